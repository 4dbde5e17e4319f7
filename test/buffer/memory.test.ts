import { MemoryBackend } from '../../src/buffer/memory/memory-store.ts';
import { bufferContract } from './contract.ts';

bufferContract('memory', async () => new MemoryBackend());

import { MemoryBackend } from '../../src/buffer/memory/memory-buffer.ts';
import { bufferContract } from './contract.ts';

bufferContract('memory', async () => new MemoryBackend());

#!/usr/bin/env -S node --max-semi-space-size=4
// --max-semi-space-size=4: V8's young generation capped at 4 MiB semi-spaces (16 by default).
// Records live about a flush_interval in the buffer, so they outlive any young generation and
// a big one only holds garbage: capped, peak RSS under a burst fell 225 → 182 MB and CPU per
// record did not rise (bench scenario 8). `npm start`, the image's entrypoint and the bench
// pass the same flag; a `node bin/estuary.js` without it still works, with more memory.
// Node ≥ 24 runs the TypeScript sources directly (type stripping); there is no build step.
// Stripping loads a WebAssembly compiler that stays resident (~20 MB); the compile cache
// keeps each module stripped and compiled, so a start that finds it skips the compiler.
// Where: NODE_COMPILE_CACHE (the image sets one, filled at build), else the OS temp dir.
// This file is JavaScript so that the cache is on before the first TypeScript module loads.
import { enableCompileCache } from 'node:module';

enableCompileCache?.();
const { runCli } = await import('../src/cli.ts');
runCli();

#!/usr/bin/env node
// Node ≥ 24 runs the TypeScript sources directly (type stripping); there is no build step.
// Stripping loads a WebAssembly compiler that stays resident (~20 MB); the compile cache
// keeps each module stripped and compiled, so a start that finds it skips the compiler.
// Where: NODE_COMPILE_CACHE (the image sets one, filled at build), else the OS temp dir.
// This file is JavaScript so that the cache is on before the first TypeScript module loads.
import { enableCompileCache } from 'node:module';

enableCompileCache?.();
const { runCli } = await import('../src/cli.ts');
runCli();

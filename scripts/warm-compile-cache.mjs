// Fills the compile cache (NODE_COMPILE_CACHE, else the OS temp dir) with every module of
// src/, stripped and compiled, so that Estuary's starts never load the type stripper: the
// Docker image runs this at build time. See bin/estuary.js.
import { readdirSync } from 'node:fs';
import { enableCompileCache, flushCompileCache } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const { directory } = enableCompileCache();
const root = new URL('../src/', import.meta.url);
const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
for (const file of files) await import(pathToFileURL(join(root.pathname, file)).href);
flushCompileCache();
process.stdout.write(`compile cache: ${files.length} modules in ${directory}\n`);

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { estuaryNodeFlags } from '../bench/harness.ts';

/** Every way Estuary is started passes the same Node flags (see bin/estuary.js for why). */
describe('bin/estuary.js node flags', () => {
  const shebang = readFileSync('bin/estuary.js', 'utf8').split('\n')[0]!;
  const fromShebang = shebang.replace('#!/usr/bin/env -S node', '').trim().split(/\s+/);
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync('Dockerfile', 'utf8'))?.[1];

  it('npm start, npm run estuary, the image and the shebang agree; the bench uses them', () => {
    assert.deepEqual(fromShebang, ['--max-semi-space-size=4']);
    assert.equal(pkg.scripts.start, `node ${fromShebang.join(' ')} bin/estuary.js run`);
    assert.equal(pkg.scripts.estuary, `node ${fromShebang.join(' ')} bin/estuary.js`);
    assert.deepEqual(JSON.parse(entrypoint ?? '[]'), ['node', ...fromShebang, '/app/bin/estuary.js']);
    assert.deepEqual(estuaryNodeFlags(), fromShebang);
  });
});

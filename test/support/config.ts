import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/errors.ts';

/** The lines of the ConfigError `load` throws (`file:line: key: message` each); fails if it throws none or another error. */
export function configErrors(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n');
  }
  return assert.fail('expected a ConfigError');
}

import { builtinRegistry } from '../../src/builtins.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Filter } from '../../src/filters/filter.ts';
import { silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';

const registry = builtinRegistry();

/**
 * The first filter of a config's `filters:` list, built through the config loader (so a bad
 * option throws the ConfigError a user sees, with `file:line`).
 */
export function buildFilter(yaml: string, file = 'f.yaml', metrics = new Metrics()): Filter {
  const c = loadConfig(yaml, file, registry, {}).filters[0]!;
  return registry
    .get('filter', c.type)!
    .create(c.options, { id: c.id, logger: silentLogger(), metrics, configDir: '.' });
}

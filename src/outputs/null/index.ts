import { z } from 'zod';
import { defineComponent } from '../../registry.ts';

/** Discards every chunk without decoding it: for benchmarks and for routing records away. */
export const nullOutput = defineComponent({
  kind: 'output',
  type: 'null',
  schema: z.strictObject({}),
  create(_config, deps) {
    return {
      id: deps.id,
      type: 'null',
      // Nothing to wait for, so nothing the write signal could cut short.
      async write(_chunk, _options) {
        return undefined;
      },
    };
  },
});

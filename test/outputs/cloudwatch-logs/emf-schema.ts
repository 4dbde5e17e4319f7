import { Ajv } from 'ajv';

/**
 * CloudWatch's Embedded Metric Format, as its specification states it ("Specification:
 * Embedded metric format", Amazon CloudWatch User Guide), written here as a JSON schema:
 *
 * - the root is an object with `_aws`, the Metadata object: `Timestamp` (milliseconds since
 *   the epoch) and `CloudWatchMetrics`, an array of MetricDirective objects;
 * - a MetricDirective has `Namespace`, `Dimensions` (an array of DimensionSets, each at most 30
 *   dimension keys) and `Metrics` (at most 100 MetricDefinitions);
 * - a MetricDefinition has `Name`, and may have `Unit` (a CloudWatch unit) and
 *   `StorageResolution` (1 or 60);
 * - "objects defined by this specification MUST NOT contain any additional members".
 *
 * What a schema cannot say — every referenced member is on the root, a number (or at most 100
 * numbers) for a metric, a string of at most 1024 characters for a dimension — `targetProblems`
 * checks.
 */

// Written out as the specification's schema spells its Unit pattern, not taken from the output's list.
const UNITS = (
  'Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes Terabytes Bits Kilobits Megabits ' +
  'Gigabits Terabits Percent Count Bytes/Second Kilobytes/Second Megabytes/Second Gigabytes/Second ' +
  'Terabytes/Second Bits/Second Kilobits/Second Megabits/Second Gigabits/Second Terabits/Second Count/Second None'
).split(' ');

const reference = (max: number) => ({ type: 'string', minLength: 1, maxLength: max });

export const EMF_SCHEMA = {
  type: 'object',
  required: ['_aws'],
  properties: {
    _aws: {
      type: 'object',
      required: ['Timestamp', 'CloudWatchMetrics'],
      additionalProperties: false,
      properties: {
        Timestamp: { type: 'integer', minimum: 0 },
        CloudWatchMetrics: {
          type: 'array',
          items: {
            type: 'object',
            required: ['Namespace', 'Dimensions', 'Metrics'],
            additionalProperties: false,
            properties: {
              Namespace: reference(1024),
              Dimensions: {
                type: 'array',
                minItems: 1,
                items: { type: 'array', maxItems: 30, items: reference(250) },
              },
              Metrics: {
                type: 'array',
                maxItems: 100,
                items: {
                  type: 'object',
                  required: ['Name'],
                  additionalProperties: false,
                  properties: {
                    Name: reference(1024),
                    Unit: { enum: UNITS },
                    StorageResolution: { enum: [1, 60] },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
} as const;

export const validateEmf = new Ajv({ allErrors: true }).compile(EMF_SCHEMA);

interface Directive {
  Dimensions: string[][];
  Metrics: { Name: string }[];
}

/** The target members a valid document must hold, as the specification requires them; [] when all are right. */
export function targetProblems(doc: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const directives = (doc._aws as { CloudWatchMetrics: Directive[] }).CloudWatchMetrics;
  for (const d of directives) {
    for (const key of d.Dimensions.flat()) {
      const v = doc[key];
      if (typeof v !== 'string' || v.length > 1024) problems.push(`dimension ${key}: ${JSON.stringify(v)}`);
    }
    for (const { Name } of d.Metrics) {
      const v = doc[Name];
      const numeric = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
      const ok = numeric(v) || (Array.isArray(v) && v.length > 0 && v.length <= 100 && v.every(numeric));
      if (!ok) problems.push(`metric ${Name}: ${JSON.stringify(v)}`);
    }
  }
  return problems;
}

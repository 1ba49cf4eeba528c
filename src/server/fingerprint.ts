import { createHash } from 'node:crypto';
import superjson from 'superjson';

/**
 * A stable hash of a raw input: the same for two inputs that differ only in object key order, different when a
 * superjson type differs (a Date is not its ISO string, 1n is not 1). Map and Set order counts.
 */
export const fingerprintInput = (rawInput: unknown): string => {
  const { json, meta } = superjson.serialize(rawInput);
  return createHash('sha256')
    .update(canonicalJson(json))
    .update('\n')
    .update(canonicalJson(meta ?? null))
    .digest('base64url');
};

const canonicalJson = (value: unknown): string => {
  if (value === undefined) return 'u';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
};

import { IdempotencyError } from '../errors';
import { sha256Base64url } from './fingerprint';

/**
 * The canonical text of a scope: the JSON that stands for it inside a record id. Anything derived from the
 * scope (the record id here, a store's `partition`) must be derived from this text, so that it agrees with the
 * record id on which callers share a scope.
 *
 * - a string `s`: `JSON.stringify(s)`, as 0.1.0 wrote it, so record ids of string scopes did not change;
 * - `undefined` and `null`: `""`, the global scope (the same as the empty string, as in 0.1.0);
 * - a number: `{"n":"<String(n)>"}`, a bigint: `{"b":"<n>"}`. A JSON object never equals a JSON string, so `1`,
 *   `1n` and `"1"` (and `NaN` and `"NaN"`, `1e21` and `"1e+21"`) are three scopes. `String(n)` tells every number
 *   apart except `0` and `-0`, which are one scope.
 *
 * Any other type is a bug in the server's `scope` option (`[object Object]` would put every caller in one scope):
 * an INVALID_OPTION error.
 */
export const scopeText = (scope: unknown): string => {
  switch (typeof scope) {
    case 'string':
      return JSON.stringify(scope);
    case 'number':
      return `{"n":"${String(scope)}"}`;
    case 'bigint':
      return `{"b":"${scope.toString()}"}`;
    case 'undefined':
      return GLOBAL;
    default:
      if (scope === null) return GLOBAL;
      throw new IdempotencyError('INVALID_OPTION', `scope() must return a string, number, bigint, null or undefined, got ${typeof scope}`);
  }
};

/**
 * The record id of a key: a hash of (scope, path, key), `scoped` being `scopeText(scope)`, so the raw key never reaches the store. The text hashed
 * is `JSON.stringify([scope, path, key])` for a string scope, byte for byte as in 0.1.0.
 */
export const recordId = (scoped: string, path: string, key: string): string =>
  sha256Base64url(`[${scoped},${JSON.stringify(path)},${JSON.stringify(key)}]`);

/** The scope text of the one global scope (`undefined`, `null` and `''`). */
export const GLOBAL_SCOPE_TEXT = '""';
const GLOBAL = GLOBAL_SCOPE_TEXT;

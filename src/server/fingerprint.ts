import * as nodeCrypto from 'node:crypto';
import superjson from 'superjson';
import { DEFAULTS } from '../constants';
import { IdempotencyError } from '../errors';
import type { InputBudget } from './inputBudget';
import { checkInputBudget, isOpaque } from './inputBudget';

/**
 * A stable hash of a raw input: the same for two inputs that differ only in object key order, different when a
 * superjson type differs (a Date is not its ISO string, 1n is not 1, `undefined` is not a missing key). Map and
 * Set order counts. An input with shared references (one object at several paths, as superjson's
 * `referentialEqualities` builds) hashes like the same input without them: the procedure sees the same value.
 *
 * Plain data (objects, arrays, strings, numbers, booleans, null, undefined, bigint, Date, Map, Set, RegExp, URL)
 * is encoded in one pass; anything else (class instances, typed arrays, errors, symbols) goes through superjson,
 * so types you registered with superjson count too. The two encodings never meet: their texts start with
 * different tags.
 *
 * Both encodings, and superjson, walk the input as a tree, so the input is first measured as one (see
 * `checkInputBudget`): past the budget, or with a cycle, it is refused with an INPUT_TOO_LARGE IdempotencyError
 * after a walk linear in the input as received.
 *
 * Inputs that cannot be compared without reading them (a Blob or File, a FormData holding files, a stream) and
 * objects superjson does not know throw an IdempotencyError instead of all hashing alike: set `fingerprint` to
 * your own function (or `false`) on such procedures.
 */
export const fingerprintInput = (rawInput: unknown, budget: InputBudget = DEFAULTS): string => {
  checkInputBudget(rawInput, budget);
  const text = encodePlain(rawInput, 0);
  if (text !== undefined) return sha256Base64url(`p${text}`);
  const { json, meta } = superjson.serialize(rawInput);
  return sha256Base64url(`s${canonicalJson(json)}\n${canonicalJson(withoutSharing(meta))}`);
};

/**
 * SHA-256 of a UTF-8 string, URL-safe base64. One-shot `crypto.hash` (Node >= 20.12) where there is one: it
 * skips the Hash object `createHash` builds, about 0.5 us per call; same digest either way.
 */
export const sha256Base64url: (text: string) => string =
  typeof nodeCrypto.hash === 'function'
    ? (text) => nodeCrypto.hash('sha256', text, 'base64url')
    : (text) => nodeCrypto.createHash('sha256').update(text).digest('base64url');

// ---- internal helpers ----

/** Deeper than this is left to superjson (as 0.1.0 did, when it took depth for a possible cycle), so fingerprints stay. */
const MAX_DEPTH = 64;

/**
 * A canonical, tagged text for plain data, or `undefined` when the value holds something else. Every value
 * starts with its own tag (`u n t f d b " D M S R L [ {`), strings are JSON-quoted and numbers never contain
 * `,:]}`, so two different values never share a text.
 */
const encodePlain = (value: unknown, depth: number): string | undefined => {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      return Object.is(value, -0) ? 'd-0' : `d${value}`;
    case 'boolean':
      return value ? 't' : 'f';
    case 'undefined':
      return 'u';
    case 'bigint':
      return `b${value}`;
    case 'object':
      break;
    default:
      return undefined; // functions, symbols
  }
  if (value === null) return 'n';
  if (depth > MAX_DEPTH) return undefined;
  if (isOpaque(value)) throw unfingerprintable(describe(value));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto === Object.prototype || proto === null) return encodeObject(value as Record<string, unknown>, depth);
  if (Array.isArray(value) && proto === Array.prototype) return encodeList('[', value, depth);
  if (value instanceof Date && proto === Date.prototype) return `D${value.getTime()}`;
  if (value instanceof Map && proto === Map.prototype) {
    let text = 'M[';
    let first = true;
    for (const [k, v] of value) {
      const key = encodePlain(k, depth + 1);
      const item = encodePlain(v, depth + 1);
      if (key === undefined || item === undefined) return undefined;
      text += `${first ? '' : ','}${key}:${item}`;
      first = false;
    }
    return `${text}]`;
  }
  if (value instanceof Set && proto === Set.prototype) return encodeList('S[', [...value], depth);
  if (value instanceof RegExp && proto === RegExp.prototype) return `R${JSON.stringify(String(value))}`;
  if (value instanceof URL && proto === URL.prototype) return `L${JSON.stringify(value.href)}`;
  if (typeof FormData !== 'undefined' && value instanceof FormData) return encodeFormData(value);
  return undefined;
};

const describe = (value: object): string => {
  const name = (value.constructor as { name?: string } | undefined)?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an async iterable or stream';
};

const unfingerprintable = (what: string): IdempotencyError =>
  new IdempotencyError(
    'INVALID_OPTION',
    `the input holds ${what}, which the default fingerprint cannot compare; set fingerprint to your own function ` +
      '(or false) on this procedure so a changed input cannot replay another result',
  );

const encodeFormData = (form: FormData): string => {
  let text = 'F[';
  let first = true;
  for (const [name, entry] of form) {
    if (typeof entry !== 'string') throw unfingerprintable('a FormData with files');
    text += `${first ? '' : ','}${JSON.stringify(name)}:${JSON.stringify(entry)}`;
    first = false;
  }
  return `${text}]`;
};

const encodeList = (open: string, items: readonly unknown[], depth: number): string | undefined => {
  let text = open;
  for (let i = 0; i < items.length; i++) {
    const item = encodePlain(items[i], depth + 1);
    if (item === undefined) return undefined;
    text += i === 0 ? item : `,${item}`;
  }
  return `${text}]`;
};

const encodeObject = (record: Record<string, unknown>, depth: number): string | undefined => {
  const keys = sortKeys(Object.keys(record));
  let text = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const item = encodePlain(record[key], depth + 1);
    if (item === undefined) return undefined;
    text += `${i === 0 ? '' : ','}${quote(key)}:${item}`;
  }
  return `${text}}`;
};

/** Characters JSON.stringify leaves as they are: printable ASCII but `"` and `\`. */
const PLAIN_STRING = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** `JSON.stringify(text)`, without its cost for the usual string that needs no escapes. */
const quote = (text: string): string => (PLAIN_STRING.test(text) ? `"${text}"` : JSON.stringify(text));

/**
 * Sorts object keys in place, as `Array.prototype.sort` would (UTF-16 code units). V8's sort allocates about
 * 1 KB per call even for two keys; an insertion sort allocates nothing and is faster for the few keys an input
 * object has (many keys fall back to the built-in).
 */
const sortKeys = (keys: string[]): string[] => {
  if (keys.length > 16) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i] as string;
    let j = i - 1;
    while (j >= 0 && (keys[j] as string) > key) {
      keys[j + 1] = keys[j] as string;
      j--;
    }
    keys[j + 1] = key;
  }
  return keys;
};

/**
 * superjson's meta without `referentialEqualities`: which paths share an object does not change the value (cycles
 * never get here). A meta left with nothing but its version hashes like no meta, as a tree input's does.
 */
const withoutSharing = (meta: { values?: unknown; referentialEqualities?: unknown; v?: number } | undefined): object | null => {
  if (meta?.values === undefined) return null;
  const { referentialEqualities: _, ...rest } = meta;
  return rest;
};

const canonicalJson = (value: unknown): string => {
  if (value === undefined) return 'u';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const proto = Object.getPrototypeOf(value) as unknown;
  // superjson leaves what it does not know as it is: hashing its own keys would make them all look alike.
  if (proto !== Object.prototype && proto !== null) throw unfingerprintable(describe(value));
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((k) => record[k] !== undefined)
    .sort();
  let text = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    text += `${i === 0 ? '' : ','}${JSON.stringify(key)}:${canonicalJson(record[key])}`;
  }
  return `${text}}`;
};

import { IdempotencyError } from '../errors';
import { KEY_PATTERN, MAX_KEY_LENGTH } from '../wire';
import type { RequestHeaders } from './headers';
import { readHeader } from './headers';

export const KEY_RULE = `an idempotency key is 1 to ${MAX_KEY_LENGTH} characters of visible ASCII (no spaces or control characters)`;

/** Checks a key against the key rules; `where` names its source in the error. */
export const validateKey = (value: unknown, where: string): string => {
  if (typeof value !== 'string') {
    throw new IdempotencyError('KEY_INVALID', `${where} must be a string: ${KEY_RULE}`);
  }
  // KEY_PATTERN needs one character at least: it refuses the empty key too.
  if (value.length > MAX_KEY_LENGTH || !KEY_PATTERN.test(value)) {
    const got = value.length === 0 ? 'it is empty' : value.length > MAX_KEY_LENGTH ? `it has ${value.length} characters` : 'it has a character outside 0x21-0x7E';
    throw new IdempotencyError('KEY_INVALID', `${where} is invalid (${got}): ${KEY_RULE}`);
  }
  return value;
};

/**
 * A key as the client wrote it, in either header: spaces and tabs around it are dropped, then an RFC 8941
 * sf-string (`"abc"`, with `\"` and `\\` escapes) is unquoted, so `"abc"` and `abc` are one key in
 * `Idempotency-Key` and in every element of `Idempotency-Keys` alike. A value that opens with `"` but is not a
 * whole sf-string is refused rather than guessed at. The result is checked by `validateKey`.
 */
export const readKey = (value: string, where: string): string => {
  const text = trimOws(value);
  return validateKey(text.charCodeAt(0) === QUOTE ? unquote(text, where) : text, where);
};

/** The key headers' names: `<name>` for one call, `<name>s` for keys by batch position. Made once per middleware. */
export interface KeyHeaderNames {
  single: string;
  list: string;
}

export const keyHeaderNames = (headerName: string): KeyHeaderNames => ({ single: headerName, list: `${headerName}s` });

/**
 * The key of call `batchIndex` from the request headers: `<name>s` (a JSON array by batch index) when present,
 * else `<name>` for batch index 0. `undefined` when the request carries none for this call (a `null` element, or
 * a list shorter than the batch). Only this call's element is checked: the others are their own calls' business.
 */
export const keyFromHeaders = (headers: RequestHeaders, names: KeyHeaderNames, batchIndex: number): string | undefined => {
  const list = readHeader(headers, names.list);
  if (list !== undefined) {
    const keys = parsedList(headers.carrier, list);
    if (keys === undefined) {
      throw new IdempotencyError('KEY_INVALID', `the ${names.list} header must be a JSON array of keys indexed by batch position, e.g. ["k1",null]`);
    }
    const key: unknown = keys[batchIndex];
    if (key === null || key === undefined) return undefined;
    const where = `${names.list}[${batchIndex}]`;
    return typeof key === 'string' ? readKey(key, where) : validateKey(key, where);
  }
  if (batchIndex !== 0) return undefined;
  const single = readHeader(headers, names.single);
  return single === undefined ? undefined : readKey(single, `the ${names.single} header`);
};

// ---- internal helpers ----

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Drops HTTP optional whitespace (spaces and tabs) at both ends; a loop, as a `/[ \t]+$/` regex is quadratic. */
const trimOws = (value: string): string => {
  let start = 0;
  let end = value.length;
  // charCodeAt past either end is NaN, which stops each loop; when they cross (all blanks), slice gives ''.
  while (isOws(value.charCodeAt(start))) start++;
  while (isOws(value.charCodeAt(end - 1))) end--;
  return value.slice(start, end);
};

const isOws = (code: number): boolean => code === 0x20 || code === 0x09;

/**
 * The content of an RFC 8941 sf-string (section 4.2.5): `"`, then characters with `"` and `\` escaped, then `"`.
 * The characters themselves are left to `validateKey`, whose range (0x21-0x7E) is inside the sf-string one.
 */
const unquote = (text: string, where: string): string => {
  let out = '';
  let from = 1;
  for (let i = 1; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === BACKSLASH) {
      const next = text.charCodeAt(i + 1);
      if (next !== QUOTE && next !== BACKSLASH) break;
      out += text.slice(from, i);
      from = ++i;
    } else if (code === QUOTE) {
      if (i !== text.length - 1) break;
      return out + text.slice(from, i);
    }
  }
  throw new IdempotencyError(
    'KEY_INVALID',
    `${where} opens with a double quote but is not a quoted string (RFC 8941: "..." with only \\" and \\\\ escaped): ${KEY_RULE}`,
  );
};

interface ParsedList {
  /** The header text `keys` came from. */
  text: string | undefined;
  /** `undefined` when the text is not a JSON array. */
  keys: readonly unknown[] | undefined;
}

/**
 * `<name>s` parsed once per request, not once per call of its batch: hung off the request's carrier (as the
 * replay report is, see reporting.ts), with a WeakMap for carriers that take no property (frozen headers). Kept
 * with the text it came from, so a header changed in between is parsed again.
 */
const LIST = Symbol('trpc-idempotency.keyList');
const frozenLists = new WeakMap<object, ParsedList>();

const parsedList = (carrier: object, text: string): readonly unknown[] | undefined => {
  const extensible = Object.isExtensible(carrier);
  let cache = extensible ? (carrier as { [LIST]?: ParsedList })[LIST] : frozenLists.get(carrier);
  if (cache === undefined) {
    cache = { text: undefined, keys: undefined };
    // Not enumerable: a spread of the request object does not copy it.
    if (extensible) Object.defineProperty(carrier, LIST, { value: cache });
    else frozenLists.set(carrier, cache);
  }
  if (cache.text !== text) {
    cache.text = text;
    cache.keys = parseList(text);
  }
  return cache.keys;
};

const parseList = (text: string): readonly unknown[] | undefined => {
  let keys: unknown;
  try {
    keys = JSON.parse(text);
  } catch {
    // Not JSON: refused below like any other non-array.
  }
  return Array.isArray(keys) ? keys : undefined;
};

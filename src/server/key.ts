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
  if (value.length === 0 || value.length > MAX_KEY_LENGTH || !KEY_PATTERN.test(value)) {
    const got = value.length === 0 ? 'it is empty' : value.length > MAX_KEY_LENGTH ? `it has ${value.length} characters` : 'it has a character outside 0x21-0x7E';
    throw new IdempotencyError('KEY_INVALID', `${where} is invalid (${got}): ${KEY_RULE}`);
  }
  return value;
};

/** Accepts an IETF structured-field string (`"abc"`) as well as a bare key. */
const unquote = (value: string): string =>
  value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1).replace(/\\(["\\])/g, '$1') : value;

/** The key headers' names: `<name>` for one call, `<name>s` for keys by batch position. Made once per middleware. */
export interface KeyHeaderNames {
  single: string;
  list: string;
}

export const keyHeaderNames = (headerName: string): KeyHeaderNames => ({ single: headerName, list: `${headerName}s` });

/**
 * The key of call `batchIndex` from the request headers: `<name>s` (a JSON array by batch index) when present,
 * else `<name>` for batch index 0. `undefined` when the request carries none for this call.
 */
export const keyFromHeaders = (headers: RequestHeaders, names: KeyHeaderNames, batchIndex: number): string | undefined => {
  const headerName = names.single;
  const list = readHeader(headers, names.list);
  if (list !== undefined) {
    let keys: unknown;
    try {
      keys = JSON.parse(list);
    } catch {
      keys = undefined;
    }
    if (!Array.isArray(keys)) {
      throw new IdempotencyError('KEY_INVALID', `the ${headerName}s header must be a JSON array of keys indexed by batch position, e.g. ["k1",null]`);
    }
    const key: unknown = keys[batchIndex];
    return key === null || key === undefined ? undefined : validateKey(key, `${headerName}s[${batchIndex}]`);
  }
  if (batchIndex !== 0) return undefined;
  const single = readHeader(headers, headerName);
  return single === undefined ? undefined : validateKey(unquote(single.trim()), `the ${headerName} header`);
};

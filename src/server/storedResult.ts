import type { TRPCError } from '@trpc/server';
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc';
import { IdempotencyError } from '../errors';
import type { Serializer } from '../serialization';

/**
 * What a completed key means, as kept in the store: the procedure's value, a final error, or a marker that the
 * procedure ran but its result could not be kept (too large or not serializable).
 */
export type StoredResult =
  | { kind: 'ok'; data: unknown }
  | { kind: 'error'; code: TRPCError['code']; message: string }
  | { kind: 'not_stored'; reason: 'too_large' | 'unserializable'; bytes?: number };

/** Format version and kind tag, then the body: `1o<serialized>`, `1e<serialized>`, `1n<json>`. */
const VERSION = '1';

/** The text to store for a procedure's value; the body is serialized once, here. */
export const encodeOk = (body: string): string => `${VERSION}o${body}`;
export const encodeError = (serializer: Serializer, code: string, message: string): string =>
  `${VERSION}e${serializer.serialize({ code, message })}`;
export const encodeNotStored = (reason: 'too_large' | 'unserializable', bytes?: number): string =>
  `${VERSION}n${JSON.stringify(bytes === undefined ? { reason } : { reason, bytes })}`;

/** Reads a stored result back; anything this library did not write is RECORD_CORRUPT. */
export const decodeStoredResult = (serializer: Serializer, text: string): StoredResult => {
  const corrupt = (why: string, cause?: unknown): IdempotencyError =>
    new IdempotencyError('RECORD_CORRUPT', `the stored result cannot be read (${why}); the record was left as it is`, { cause });
  if (typeof text !== 'string' || text[0] !== VERSION) throw corrupt('unknown format');
  const body = text.slice(2);
  try {
    switch (text[1]) {
      case 'o':
        return { kind: 'ok', data: serializer.deserialize(body) };
      case 'e': {
        const error = serializer.deserialize(body) as { code?: unknown; message?: unknown } | null;
        if (typeof error?.code !== 'string' || typeof error.message !== 'string') throw corrupt('error without code');
        if (!Object.hasOwn(TRPC_ERROR_CODES_BY_KEY, error.code)) throw corrupt(`unknown error code ${JSON.stringify(error.code)}`);
        return { kind: 'error', code: error.code as TRPCError['code'], message: error.message };
      }
      case 'n': {
        const marker = JSON.parse(body) as { reason?: unknown; bytes?: unknown };
        if (marker.reason !== 'too_large' && marker.reason !== 'unserializable') throw corrupt('unknown marker');
        return typeof marker.bytes === 'number'
          ? { kind: 'not_stored', reason: marker.reason, bytes: marker.bytes }
          : { kind: 'not_stored', reason: marker.reason };
      }
      default:
        throw corrupt('unknown kind');
    }
  } catch (error) {
    if (error instanceof IdempotencyError) throw error;
    throw corrupt('body does not deserialize', error);
  }
};

const isStream = (value: unknown): boolean =>
  typeof value === 'object' &&
  value !== null &&
  (Symbol.asyncIterator in value || typeof (value as { subscribe?: unknown }).subscribe === 'function');

export type EncodedValue =
  | { text: string; notStored?: undefined }
  | { text: string; notStored: { reason: 'too_large' | 'unserializable'; bytes?: number } };

/**
 * The text to store for a procedure's value, serialized once. A value that can't be serialized (a stream, a
 * serializer error) or is larger than `maxBytes` becomes a `not_stored` marker: retries are refused, not rerun.
 */
export const encodeValue = (serializer: Serializer, data: unknown, maxBytes: number): EncodedValue => {
  let body: string;
  try {
    if (isStream(data)) throw new Error('streamed output');
    body = serializer.serialize(data);
  } catch {
    return { text: encodeNotStored('unserializable'), notStored: { reason: 'unserializable' } };
  }
  // A UTF-16 unit is at most 3 UTF-8 bytes: most results are clearly small enough without counting.
  const bytes = body.length * 3 <= maxBytes ? 0 : Buffer.byteLength(body);
  if (bytes > maxBytes) return { text: encodeNotStored('too_large', bytes), notStored: { reason: 'too_large', bytes } };
  return { text: encodeOk(body) };
};

/** What a retry gets for a key whose procedure ran but whose result was not kept. */
export const notStoredError = (stored: Extract<StoredResult, { kind: 'not_stored' }>, path: string): IdempotencyError => {
  const size = stored.bytes === undefined ? '' : ` (${stored.bytes} bytes)`;
  return new IdempotencyError(
    'NOT_STORED',
    stored.reason === 'too_large'
      ? `mutation "${path}" already ran with this idempotency key, but its result${size} was larger than maxResultBytes and was not kept; it will not run again`
      : `mutation "${path}" already ran with this idempotency key, but its result could not be serialized and was not kept; it will not run again`,
  );
};

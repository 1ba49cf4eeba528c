import type { KeyStatus } from '../wire';
import {
  NO_STATUS_LETTER,
  REPLAYED_HEADER,
  RETRY_AFTER_HEADER,
  STATUS_DEFERRED,
  STATUS_HEADER,
  STATUS_LETTERS,
  STATUSES_HEADER,
  STATUSES_OMITTED,
} from '../wire';

/** What a response said about one key. */
export type ResponseKeyStatus =
  /** No response at all (network error, aborted). */
  | { kind: 'no_response' }
  /** A response without `Idempotency-Status` (and without `Idempotent-Replayed: true`). */
  | { kind: 'absent' }
  /** `Idempotency-Status: deferred`: the head was written before the calls ran (streaming). */
  | { kind: 'deferred' }
  /** `omitted`: the batch was too large for the server to report on it within its header budget. */
  | { kind: 'omitted' }
  /** `Idempotency-Status` listed other keys but not this one. */
  | { kind: 'not_seen' }
  | { kind: 'reported'; status: KeyStatus };

interface HeadersEsque {
  get(name: string): string | null;
}

/** @internal The headers of `meta.response` (typed by tRPC as a `ResponseEsque` without headers). */
export const responseHeaders = (meta: unknown): HeadersEsque | null | undefined => {
  const response = (meta as { response?: { headers?: Partial<HeadersEsque> } } | undefined)?.response;
  if (!response) return undefined;
  const headers = response.headers;
  return typeof headers?.get === 'function' ? (headers as HeadersEsque) : null;
};

/**
 * @internal Reads what the server did with `key` from a link result's meta: `Idempotency-Statuses` at the call's
 * batch `position` when both are known, else `Idempotency-Status` (or Stripe's `Idempotent-Replayed`).
 */
export const readKeyStatus = (meta: unknown, key: string, position?: number): ResponseKeyStatus => {
  const headers = responseHeaders(meta);
  if (headers === undefined) return { kind: 'no_response' };
  const byPosition = position === undefined ? undefined : readPosition(headers?.get(STATUSES_HEADER), position);
  if (byPosition) return byPosition;
  const raw = headers?.get(STATUS_HEADER)?.trim();
  if (!raw) {
    return headers?.get(REPLAYED_HEADER)?.trim().toLowerCase() === 'true'
      ? { kind: 'reported', status: 'replayed' }
      : { kind: 'absent' };
  }
  if (raw === STATUS_DEFERRED) return { kind: 'deferred' };
  if (raw === STATUSES_OMITTED) return { kind: 'omitted' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { kind: 'absent' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { kind: 'absent' };
  const status = (parsed as Record<string, unknown>)[key];
  if (typeof status !== 'string') return { kind: 'not_seen' };
  // A status this client does not know (a broken proxy, a hostile or newer server) says nothing it can rely on:
  // reported as is, it would read as "not a replay" and reach `context.idempotency.status` outside its type.
  return KNOWN_STATUSES.has(status) ? { kind: 'reported', status: status as KeyStatus } : { kind: 'absent' };
};

/** @internal `Retry-After` in milliseconds (delta-seconds or an HTTP date), or `undefined`. */
export const readRetryAfterMs = (meta: unknown, now: number = Date.now()): number | undefined => {
  const raw = responseHeaders(meta)?.get(RETRY_AFTER_HEADER)?.trim();
  if (!raw) return undefined;
  if (/^\d+(\.\d+)?$/.test(raw)) return Math.round(Number(raw) * 1000);
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
};

const KNOWN_STATUSES: ReadonlySet<string> = new Set(Object.keys(STATUS_LETTERS));

const STATUS_OF_LETTER: ReadonlyMap<string, KeyStatus> = new Map(
  Object.entries(STATUS_LETTERS).map(([status, letter]) => [letter, status as KeyStatus]),
);

/**
 * The letter at `position` of `Idempotency-Statuses`. Only that character is looked at: every call of a batch
 * reads the same header, so checking the whole value each time would be quadratic in the batch size.
 */
const readPosition = (raw: string | null | undefined, position: number): ResponseKeyStatus | undefined => {
  const value = raw?.trim();
  if (!value) return undefined;
  if (value === STATUSES_OMITTED) return { kind: 'omitted' };
  const letter = value[position];
  if (letter === undefined || letter === NO_STATUS_LETTER) return { kind: 'not_seen' };
  const status = STATUS_OF_LETTER.get(letter);
  return status === undefined ? undefined : { kind: 'reported', status };
};

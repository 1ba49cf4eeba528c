import { describe, expect, it, vi } from 'vitest';
import { idempotentRetry } from '../../src/client/index';
import { makeOp, networkError, serverError } from './fixtures';

const status = (key: string, value: string) => ({ 'idempotency-status': JSON.stringify({ [key]: value }) });

describe('idempotentRetry', () => {
  it('retries a keyed mutation after a network error (no response)', () => {
    const { retry } = idempotentRetry();
    expect(retry({ op: makeOp(), error: networkError(), attempts: 1 })).toBe(true);
  });

  it('retries a keyed mutation on a 5xx the server did not reply to from its store', () => {
    const { retry } = idempotentRetry();
    const error = serverError({ code: 'INTERNAL_SERVER_ERROR', httpStatus: 500, headers: status('k1', 'executed') });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
    const storeDown = serverError({ code: 'SERVICE_UNAVAILABLE', httpStatus: 503, idempotency: { reason: 'store_unavailable' } });
    expect(retry({ op: makeOp(), error: storeDown, attempts: 1 })).toBe(true);
  });

  it('does not retry a 5xx response that shows no sign the idempotency layer handled the key', () => {
    const { retry } = idempotentRetry();
    // e.g. the procedure lacks idempotent() and the server has no responseMeta: it may have run already
    const error = serverError({ code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(false);
  });

  it('retries SERVICE_UNAVAILABLE and waits the retryAfterMs the server asked for', () => {
    const { retry, retryDelayMs } = idempotentRetry({ random: () => 0 });
    const error = serverError({
      code: 'SERVICE_UNAVAILABLE',
      httpStatus: 503,
      idempotency: { reason: 'store_unavailable', retryAfterMs: 750 },
      headers: status('k1', 'store_unavailable'),
    });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
    expect(retryDelayMs(1)).toBe(750);
  });

  it('retries an in-progress CONFLICT and honours data.idempotency.retryAfterMs', () => {
    const { retry, retryDelayMs } = idempotentRetry({ random: () => 0.99 });
    const error = serverError({
      code: 'CONFLICT',
      httpStatus: 409,
      idempotency: { reason: 'in_progress', retryAfterMs: 1_500 },
      headers: { ...status('k1', 'in_progress'), 'retry-after': '2' },
    });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
    expect(retryDelayMs(1)).toBe(1_500);
  });

  it('retries a lease-lost CONFLICT (the procedure ran, another request owns the key), from the data or the status alone', () => {
    const { retry } = idempotentRetry();
    const withData = serverError({ code: 'CONFLICT', httpStatus: 409, idempotency: { reason: 'lease_lost' }, headers: status('k1', 'lease_lost') });
    expect(retry({ op: makeOp(), error: withData, attempts: 1 })).toBe(true);
    const headerOnly = serverError({ code: 'CONFLICT', httpStatus: 409, headers: status('k1', 'lease_lost') });
    expect(retry({ op: makeOp(), error: headerOnly, attempts: 1 })).toBe(true);
    const dataOnly = serverError({ code: 'CONFLICT', httpStatus: 409, idempotency: { reason: 'lease_lost' } });
    expect(retry({ op: makeOp(), error: dataOnly, attempts: 1 })).toBe(true);
  });

  it('retries a CONFLICT with Retry-After when the error formatter adds no idempotency data, and waits that long', () => {
    const { retry, retryDelayMs } = idempotentRetry({ random: () => 0 });
    const error = serverError({ code: 'CONFLICT', httpStatus: 409, headers: { 'retry-after': '1' } });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
    expect(retryDelayMs(1)).toBe(1_000);
  });

  it('caps the server hint at maxDelayMs', () => {
    const { retry, retryDelayMs } = idempotentRetry({ maxDelayMs: 400 });
    const error = serverError({ code: 'CONFLICT', httpStatus: 409, idempotency: { reason: 'in_progress', retryAfterMs: 60_000 } });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
    expect(retryDelayMs(1)).toBe(400);
  });

  it('does not retry a payload mismatch (UNPROCESSABLE_CONTENT)', () => {
    const { retry } = idempotentRetry();
    const error = serverError({
      code: 'UNPROCESSABLE_CONTENT',
      httpStatus: 422,
      idempotency: { reason: 'mismatch' },
      headers: status('k1', 'mismatch'),
    });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(false);
  });

  it('does not retry a CONFLICT that is not about a key in progress', () => {
    const { retry } = idempotentRetry();
    const appConflict = serverError({ code: 'CONFLICT', httpStatus: 409, headers: status('k1', 'executed') });
    expect(retry({ op: makeOp(), error: appConflict, attempts: 1 })).toBe(false);
    const notStored = serverError({ code: 'CONFLICT', httpStatus: 409, idempotency: { reason: 'not_stored' } });
    expect(retry({ op: makeOp(), error: notStored, attempts: 1 })).toBe(false);
  });

  it('does not retry other client errors', () => {
    const { retry } = idempotentRetry();
    for (const [code, httpStatus] of [['BAD_REQUEST', 400], ['UNAUTHORIZED', 401], ['FORBIDDEN', 403], ['TOO_MANY_REQUESTS', 429]] as const) {
      expect(retry({ op: makeOp(), error: serverError({ code, httpStatus }), attempts: 1 })).toBe(false);
    }
  });

  it('does not retry a replayed outcome: the stored error is final', () => {
    const { retry } = idempotentRetry();
    const error = serverError({ code: 'INTERNAL_SERVER_ERROR', httpStatus: 500, headers: status('k1', 'replayed') });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(false);
  });

  it('does not retry a 5xx for a key the server reported nothing about (procedure not protected)', () => {
    const { retry } = idempotentRetry();
    const error = serverError({ code: 'INTERNAL_SERVER_ERROR', httpStatus: 500, headers: status('other', 'executed') });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(false);
  });

  it('never retries an unkeyed mutation, and warns once', () => {
    const onWarning = vi.fn();
    const { retry } = idempotentRetry({ onWarning });
    const op = makeOp({ context: {} });
    expect(retry({ op, error: networkError(), attempts: 1 })).toBe(false);
    expect(retry({ op, error: serverError({ code: 'SERVICE_UNAVAILABLE', httpStatus: 503 }), attempts: 1 })).toBe(false);
    expect(onWarning).toHaveBeenCalledTimes(1);
    expect(onWarning.mock.calls[0]?.[0]).toMatchObject({ code: 'unkeyed_mutation', path: 'order.create' });
  });

  it('stops at maxAttempts (attempts count the first call)', () => {
    const { retry } = idempotentRetry({ maxAttempts: 3 });
    expect(retry({ op: makeOp(), error: networkError(), attempts: 2 })).toBe(true);
    expect(retry({ op: makeOp(), error: networkError(), attempts: 3 })).toBe(false);
  });

  it('does not retry an aborted call', () => {
    const { retry } = idempotentRetry();
    const ac = new AbortController();
    ac.abort();
    expect(retry({ op: makeOp({ signal: ac.signal }), error: networkError(), attempts: 1 })).toBe(false);
  });

  it('leaves queries to retryQueries (default: no retry) and never retries subscriptions', () => {
    const query = makeOp({ type: 'query', context: {} });
    expect(idempotentRetry().retry({ op: query, error: networkError(), attempts: 1 })).toBe(false);
    const retryQueries = vi.fn(() => true);
    const { retry } = idempotentRetry({ retryQueries });
    expect(retry({ op: query, error: networkError(), attempts: 1 })).toBe(true);
    expect(retryQueries).toHaveBeenCalledTimes(1);
    expect(retry({ op: makeOp({ type: 'subscription', context: {} }), error: networkError(), attempts: 1 })).toBe(false);
  });

  it('backs off exponentially with full jitter, capped at maxDelayMs', () => {
    const { retry, retryDelayMs } = idempotentRetry({ maxAttempts: 10, baseDelayMs: 100, maxDelayMs: 1_000, random: () => 0.5 });
    const delays = [1, 2, 3, 4, 5].map((attempts) => {
      expect(retry({ op: makeOp(), error: networkError(), attempts })).toBe(true);
      return retryDelayMs(attempts);
    });
    expect(delays).toEqual([50, 100, 200, 400, 500]);
    // without a preceding retry() for that attempt, retryDelayMs computes a plain backoff
    expect(retryDelayMs(2)).toBe(100);
  });

  it('rejects bad options by name', () => {
    expect(() => idempotentRetry({ maxAttempts: 0 })).toThrow(/maxAttempts/);
    expect(() => idempotentRetry({ maxDelayMs: Number.NaN })).toThrow(/maxDelayMs/);
  });
});

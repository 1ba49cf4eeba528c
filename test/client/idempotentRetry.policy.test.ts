import { TRPCClientError } from '@trpc/client';
import { describe, expect, it, vi } from 'vitest';
import { idempotentRetry } from '../../src/client/index';
import { makeOp, networkError, serverError } from './fixtures';

/*
 * The retry policy of idempotentRetry (docs/client.md), one rule per test: which failures of a keyed mutation are
 * retried, how long it waits, and which options it accepts. idempotentRetry.test.ts has the main cases; this file
 * covers the ones that need a closer look at what the server (or something in front of it) answered.
 */

const statuses = (entries: Record<string, string>) => ({ 'idempotency-status': JSON.stringify(entries) });

/** A TRPCClientError as the links build it when a response came but its body is not a tRPC error. */
const responseWithoutTrpcBody = (status: number): TRPCClientError<any> =>
  TRPCClientError.from(new Error('Unable to transform response from server'), {
    meta: { response: new Response(null, { status }) },
  });

/** A tRPC error whose `data` is whatever the server's error formatter made of it. */
const formattedError = (data: Record<string, unknown>, response?: { status: number; headers?: Record<string, string> }) =>
  TRPCClientError.from(
    { error: { code: -32000, message: 'failed', data } },
    response ? { meta: { response: new Response(null, response) } } : {},
  );

describe('idempotentRetry: which failures are retried', () => {
  it('retries a CONFLICT whose key is in progress when only Idempotency-Status says so (no error data, no Retry-After)', () => {
    // e.g. an error formatter without idempotencyErrorData, behind a proxy that strips Retry-After
    const { retry } = idempotentRetry();
    const error = serverError({ code: 'CONFLICT', httpStatus: 409, headers: statuses({ k1: 'in_progress' }) });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
  });

  it('does not retry a bare CONFLICT (no idempotency data, no status, no Retry-After): the application refused the call', () => {
    const { retry } = idempotentRetry();
    const error = serverError({ code: 'CONFLICT', httpStatus: 409 });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(false);
  });

  it("does not retry an application CONFLICT because of another call's Retry-After in the same batch", () => {
    // k2 is in progress, so the batch response carries Retry-After; k1's own procedure threw CONFLICT
    const { retry } = idempotentRetry();
    const headers = { ...statuses({ k1: 'executed', k2: 'in_progress' }), 'retry-after': '1' };
    const stored = serverError({ code: 'CONFLICT', httpStatus: 409, headers });
    expect(retry({ op: makeOp(), error: stored, attempts: 1 })).toBe(false);
    const notStored = serverError({ code: 'CONFLICT', httpStatus: 409, idempotency: { reason: 'not_stored' }, headers: { 'retry-after': '1' } });
    expect(retry({ op: makeOp(), error: notStored, attempts: 1 })).toBe(false);
  });

  it('does not retry a CONFLICT for a key the batch response does not list (its procedure lacks idempotent()), Retry-After or not', () => {
    const { retry } = idempotentRetry();
    const headers = { ...statuses({ k2: 'in_progress' }), 'retry-after': '1' };
    const error = serverError({ code: 'CONFLICT', httpStatus: 409, headers });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(false);
  });

  it("trusts the call's own idempotency error data over a status header that does not list its key", () => {
    const { retry } = idempotentRetry();
    const error = serverError({
      code: 'CONFLICT',
      httpStatus: 409,
      idempotency: { reason: 'in_progress' },
      headers: statuses({ other: 'executed' }),
    });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
  });

  it('does not retry a 5xx answered by something other than the tRPC server (a body that is no tRPC error)', () => {
    // a proxy or gateway: nothing shows the idempotency layer handled the key, and the procedure may have run
    const { retry } = idempotentRetry();
    for (const status of [500, 502, 503, 504]) {
      expect(retry({ op: makeOp(), error: responseWithoutTrpcBody(status), attempts: 1 })).toBe(false);
    }
  });

  it('does not retry a request the client aborted, whatever aborted it (a fetch with its own timeout signal)', () => {
    const { retry } = idempotentRetry();
    const error = TRPCClientError.from(new DOMException('This operation was aborted', 'AbortError'));
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(false);
  });

  it("judges a batched call by its own httpStatus, not the response's (207 for a mixed batch)", () => {
    const { retry } = idempotentRetry();
    const error = serverError({ code: 'INTERNAL_SERVER_ERROR', httpStatus: 500, responseStatus: 207, headers: statuses({ k1: 'released' }) });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
    const clientError = serverError({ code: 'BAD_REQUEST', httpStatus: 400, responseStatus: 500, headers: statuses({ k1: 'released' }) });
    expect(retry({ op: makeOp(), error: clientError, attempts: 1 })).toBe(false);
  });

  it('falls back to the HTTP status when the error formatter leaves httpStatus out of the error data', () => {
    const { retry } = idempotentRetry();
    const headers = statuses({ k1: 'released' });
    const serverSide = formattedError({ code: 'INTERNAL_SERVER_ERROR' }, { status: 500, headers });
    expect(retry({ op: makeOp(), error: serverSide, attempts: 1 })).toBe(true);
    const clientSide = formattedError({ code: 'BAD_REQUEST' }, { status: 400, headers });
    expect(retry({ op: makeOp(), error: clientSide, attempts: 1 })).toBe(false);
  });

  it('retries SERVICE_UNAVAILABLE by its code when no status code says 5xx (a streamed batch answers 200)', () => {
    const { retry } = idempotentRetry();
    const error = formattedError({ code: 'SERVICE_UNAVAILABLE', idempotency: { reason: 'store_unavailable' } }, { status: 200 });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
  });

  it('decides by the error code when neither the error data nor a response gives an HTTP status (wsLink, a formatter without httpStatus)', () => {
    // wsLink builds its errors from the server's error shape alone: no response meta.
    const { retry } = idempotentRetry();
    const unavailable = formattedError({ code: 'SERVICE_UNAVAILABLE', idempotency: { reason: 'store_unavailable' } });
    expect(retry({ op: makeOp(), error: unavailable, attempts: 1 })).toBe(true);
    const unreported = formattedError({ code: 'INTERNAL_SERVER_ERROR' });
    expect(retry({ op: makeOp(), error: unreported, attempts: 1 })).toBe(false);
  });

  it('retries a failure that carries no response, no error data and no cause (a bare TRPCClientError) as a network error', () => {
    const { retry } = idempotentRetry();
    expect(retry({ op: makeOp(), error: new TRPCClientError('connection lost'), attempts: 1 })).toBe(true);
  });

  it('never retries a subscription, and does not mistake it for an unkeyed mutation', () => {
    const onWarning = vi.fn();
    const { retry } = idempotentRetry({ onWarning });
    const subscription = makeOp({ type: 'subscription', context: {} });
    expect(retry({ op: subscription, error: networkError(), attempts: 1 })).toBe(false);
    expect(onWarning).not.toHaveBeenCalled();
  });

  it('asks retryQueries with the failed query, its error and the attempts so far', () => {
    const retryQueries = vi.fn(() => false);
    const { retry } = idempotentRetry({ retryQueries });
    const op = makeOp({ type: 'query', context: {} });
    const error = networkError();
    expect(retry({ op, error, attempts: 2 })).toBe(false);
    expect(retryQueries).toHaveBeenCalledWith({ op, error, attempts: 2 });
  });

  it('says in the unkeyed_mutation warning how to fix the links', () => {
    const onWarning = vi.fn();
    idempotentRetry({ onWarning }).retry({ op: makeOp({ context: {} }), error: networkError(), attempts: 1 });
    const message = String(onWarning.mock.calls[0]?.[0]?.message);
    expect(message).toMatch(/no idempotency key/);
    expect(message).toMatch(/idempotencyLink\(\).*before retryLink\(\)/);
  });
});

describe('idempotentRetry: how long it waits', () => {
  it("prefers the error data's retryAfterMs to Retry-After, a hint of 0 included", () => {
    const { retry, retryDelayMs } = idempotentRetry({ random: () => 0 });
    const error = serverError({
      code: 'CONFLICT',
      httpStatus: 409,
      idempotency: { reason: 'in_progress', retryAfterMs: 0 },
      headers: { 'retry-after': '3' },
    });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
    expect(retryDelayMs(1)).toBe(0);
  });

  it("ignores a retryAfterMs that is not a number >= 0 and waits for Retry-After instead", () => {
    const { retry, retryDelayMs } = idempotentRetry({ random: () => 0 });
    for (const retryAfterMs of [-1, '5000', null]) {
      const error = formattedError(
        { code: 'CONFLICT', httpStatus: 409, idempotency: { reason: 'in_progress', retryAfterMs } },
        { status: 409, headers: { 'retry-after': '2' } },
      );
      expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
      expect(retryDelayMs(1)).toBe(2_000);
    }
  });

  it('never hands the hint of a failure it refused to retry to a later retryDelayMs', () => {
    const { retry, retryDelayMs } = idempotentRetry({ baseDelayMs: 100, random: () => 0.5 });
    const refused = serverError({ code: 'CONFLICT', httpStatus: 409, idempotency: { reason: 'not_stored', retryAfterMs: 5_000 } });
    expect(retry({ op: makeOp(), error: refused, attempts: 1 })).toBe(false);
    expect(retryDelayMs(1)).toBe(50); // plain backoff: 0.5 * 100
  });

  it('keeps every delay within [0, min(maxDelayMs, baseDelayMs * 2^(attempt - 1))] for any random value', () => {
    const { retryDelayMs: lowest } = idempotentRetry({ baseDelayMs: 300, maxDelayMs: 1_000, random: () => 0 });
    const { retryDelayMs: highest } = idempotentRetry({ baseDelayMs: 300, maxDelayMs: 1_000, random: () => 0.999_999 });
    expect([1, 2, 3, 4].map(lowest)).toEqual([0, 0, 0, 0]);
    expect([1, 2, 3, 4].map(highest)).toEqual([300, 600, 1_000, 1_000]);
  });

  it('does not wait at all with baseDelayMs: 0, and caps even the server hint with maxDelayMs: 0', () => {
    const { retry, retryDelayMs } = idempotentRetry({ baseDelayMs: 0, maxDelayMs: 0, random: () => 0.9 });
    expect([1, 2, 3].map(retryDelayMs)).toEqual([0, 0, 0]);
    const error = serverError({ code: 'CONFLICT', httpStatus: 409, idempotency: { reason: 'in_progress', retryAfterMs: 2_000 } });
    expect(retry({ op: makeOp(), error, attempts: 1 })).toBe(true);
    expect(retryDelayMs(1)).toBe(0);
  });
});

describe('idempotentRetry: options', () => {
  it('accepts maxAttempts: 1 (never retry) and delays of 0', () => {
    const { retry } = idempotentRetry({ maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 });
    expect(retry({ op: makeOp(), error: networkError(), attempts: 1 })).toBe(false);
    expect(() => idempotentRetry({ baseDelayMs: 12.5 })).not.toThrow();
  });

  it('rejects a maxAttempts that is not an integer >= 1, saying so', () => {
    for (const maxAttempts of [0, -1, 2.5, Number.POSITIVE_INFINITY]) {
      expect(() => idempotentRetry({ maxAttempts })).toThrow(/`maxAttempts` must be an integer >= 1/);
    }
  });

  it('rejects delays that are not finite numbers >= 0 (a string from the environment included), saying so', () => {
    for (const value of [-1, Number.NaN, Number.POSITIVE_INFINITY, '100' as unknown as number]) {
      expect(() => idempotentRetry({ baseDelayMs: value })).toThrow(/`baseDelayMs` must be a finite number >= 0/);
      expect(() => idempotentRetry({ maxDelayMs: value })).toThrow(/`maxDelayMs` must be a finite number >= 0/);
    }
  });
});

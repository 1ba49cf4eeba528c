import type { Operation } from '@trpc/client';
import { TRPCClientError } from '@trpc/client';

/** A mutation (or other) operation as retryLink would pass it. */
export const makeOp = (overrides: Partial<Operation> = {}): Operation => ({
  id: 1,
  type: 'mutation',
  path: 'order.create',
  input: { n: 1 },
  context: { idempotencyKey: 'k1' },
  signal: undefined,
  ...overrides,
});

/** A TRPCClientError as the HTTP links build it from a server error response. */
export const serverError = (opts: {
  code: string;
  httpStatus: number;
  idempotency?: { reason: string; retryAfterMs?: number };
  headers?: Record<string, string>;
  responseStatus?: number;
}): TRPCClientError<any> =>
  TRPCClientError.from(
    {
      error: {
        code: -32000,
        message: opts.code,
        data: { code: opts.code, httpStatus: opts.httpStatus, idempotency: opts.idempotency },
      },
    },
    { meta: { response: new Response(null, { status: opts.responseStatus ?? opts.httpStatus, headers: opts.headers }) } },
  );

/** A TRPCClientError as the HTTP links build it when fetch fails (no response). */
export const networkError = (): TRPCClientError<any> => TRPCClientError.from(new TypeError('fetch failed'));

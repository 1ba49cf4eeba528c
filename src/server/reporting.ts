import type { AnyRouter } from '@trpc/server';
import type { ResponseMeta, ResponseMetaFn } from '@trpc/server/http';
import type { KeyStatus } from '../wire';
import { EXPOSED_HEADERS, REPLAYED_HEADER, RETRY_AFTER_HEADER, STATUS_DEFERRED, STATUS_HEADER, STATUSES_HEADER } from '../wire';
import { findRequestHeaders } from './headers';

interface RequestReport {
  statuses: Map<string, KeyStatus>;
  /** The same by batch position: two calls of one batch may share a key. */
  byIndex: (KeyStatus | null)[];
  retryAfterMs: number;
}

/** What the middleware decided per key, per HTTP request; keyed by the request object, so nothing leaks. */
const reports = new WeakMap<object, RequestReport>();
/** Header names the middleware reads, per request, so a streamed head can say `deferred` for keyed requests. */
const keyHeaderNames = new Set<string>();

export const rememberHeaderName = (headerName: string): void => {
  keyHeaderNames.add(headerName);
};

export interface KeyReport {
  key: string;
  batchIndex: number;
  status: KeyStatus;
  retryAfterMs?: number | undefined;
}

export const reportKey = (carrier: object | undefined, { key, batchIndex, status, retryAfterMs }: KeyReport): void => {
  if (!carrier) return;
  let report = reports.get(carrier);
  if (!report) reports.set(carrier, (report = { statuses: new Map(), byIndex: [], retryAfterMs: 0 }));
  report.statuses.set(key, status);
  report.byIndex[batchIndex] = status;
  if (retryAfterMs !== undefined) report.retryAfterMs = Math.max(report.retryAfterMs, retryAfterMs);
};

const toHeaders = (headers: ResponseMeta['headers']): Headers => {
  if (headers instanceof Headers) return headers;
  const result = new Headers();
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (Array.isArray(value)) for (const v of value) result.append(name, v);
    else if (value !== undefined) result.set(name, value);
  }
  return result;
};

const exposeHeaders = (headers: Headers): void => {
  const listed = (headers.get('access-control-expose-headers') ?? '').toLowerCase();
  for (const name of EXPOSED_HEADERS) if (!listed.includes(name)) headers.append('access-control-expose-headers', name);
};

/**
 * The adapter's `responseMeta`: reports per key whether the call was a replay (`Idempotency-Status`,
 * `Idempotent-Replayed`) and when to retry an in-progress key (`Retry-After`). Pass your own `responseMeta`
 * to keep it: its status and headers are kept, ours are added.
 *
 * @example createHTTPServer({ router, createContext, responseMeta: idempotencyResponseMeta() })
 */
export const idempotencyResponseMeta = <TRouter extends AnyRouter = AnyRouter>(
  inner?: ResponseMetaFn<TRouter>,
): ResponseMetaFn<TRouter> => {
  return (opts) => {
    const base = inner?.(opts) ?? {};
    const request = findRequestHeaders(opts.ctx);
    if (!request) return base;
    const report = reports.get(request.carrier);
    const keyed =
      report !== undefined ||
      [...keyHeaderNames].some((n) => request.get(n) !== undefined || request.get(`${n}s`) !== undefined);
    if (!keyed) return base;
    const headers = toHeaders(base.headers);
    // Only a browser on another origin needs them exposed; it always sends Origin.
    if (request.get('origin') !== undefined) exposeHeaders(headers);
    if (opts.eagerGeneration) {
      // Streamed responses send their head before any call ran: say so, so clients don't guess.
      headers.set(STATUS_HEADER, STATUS_DEFERRED);
      return { ...base, headers };
    }
    if (!report) {
      // Keys came, but no idempotent procedure saw them: the client can tell its key was not protected.
      headers.set(STATUS_HEADER, '{}');
      return { ...base, headers };
    }
    headers.set(STATUS_HEADER, JSON.stringify(Object.fromEntries(report.statuses)));
    if (opts.info?.isBatchCall) headers.set(STATUSES_HEADER, JSON.stringify(Array.from(report.byIndex, (s) => s ?? null)));
    const single = opts.info?.isBatchCall !== true && report.statuses.size === 1;
    if (single && [...report.statuses.values()][0] === 'replayed') headers.set(REPLAYED_HEADER, 'true');
    if (report.retryAfterMs > 0) headers.set(RETRY_AFTER_HEADER, String(Math.ceil(report.retryAfterMs / 1000)));
    return { ...base, headers };
  };
};

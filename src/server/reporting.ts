import type { AnyRouter } from '@trpc/server';
import type { ResponseMetaFn } from '@trpc/server/http';
import type { KeyStatus } from '../wire';
import { EXPOSED_HEADERS, REPLAYED_HEADER, RETRY_AFTER_HEADER, STATUS_DEFERRED, STATUS_HEADER, STATUSES_HEADER } from '../wire';
import { findRequestHeaders } from './headers';
import type { RequestHeaders } from './headers';

interface RequestReport {
  statuses: Map<string, KeyStatus>;
  /** The same by batch position: two calls of one batch may share a key. */
  byIndex: (KeyStatus | null)[];
  retryAfterMs: number;
}

/**
 * What the middleware decided per key, per HTTP request, hung off the request object itself so it dies with the
 * request. A WeakMap did the same job but made every report outlive young-generation GCs (its table lives in old
 * space), which cost a busy HTTP server more than the rest of a replay. Objects that can't take a property
 * (frozen headers) fall back to the WeakMap.
 */
const REPORT = Symbol('trpc-idempotency.report');
const frozenReports = new WeakMap<object, RequestReport>();

const reportOf = (carrier: object): RequestReport | undefined =>
  (carrier as { [REPORT]?: RequestReport })[REPORT] ?? frozenReports.get(carrier);

const newReport = (carrier: object): RequestReport => {
  const report: RequestReport = { statuses: new Map(), byIndex: [], retryAfterMs: 0 };
  if (Object.isExtensible(carrier)) Object.defineProperty(carrier, REPORT, { value: report, configurable: true });
  else frozenReports.set(carrier, report);
  return report;
};
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
  const report = reportOf(carrier) ?? newReport(carrier);
  report.statuses.set(key, status);
  report.byIndex[batchIndex] = status;
  if (retryAfterMs !== undefined) report.retryAfterMs = Math.max(report.retryAfterMs, retryAfterMs);
};

type HeaderRecord = Record<string, string | string[] | undefined>;

/** Where our headers go: a copy of the user's `Headers` (theirs may be shared), else a plain record; tRPC copies either. */
interface HeaderSink {
  set(name: string, value: string): void;
  /** Adds `names` to `Access-Control-Expose-Headers`, keeping what is listed already. */
  expose(names: readonly string[]): void;
  headers: Headers | HeaderRecord;
}

/** The names in an `Access-Control-Expose-Headers` value, lower-cased. */
const listedNames = (value: string): Set<string> => new Set(value.split(',').map((name) => name.trim().toLowerCase()));

const headersSink = (base: Headers): HeaderSink => {
  const headers = new Headers(base);
  return {
    headers,
    set: (name, value) => headers.set(name, value),
    expose: (names) => {
      const listed = listedNames(headers.get(EXPOSE_HEADER) ?? '');
      for (const name of names) if (!listed.has(name)) headers.append(EXPOSE_HEADER, name);
    },
  };
};

const recordSink = (base: HeaderRecord | undefined): HeaderSink => {
  const headers: HeaderRecord = base ? { ...base } : {};
  return {
    headers,
    set: (name, value) => {
      headers[name] = value;
    },
    expose: (names) => {
      // The user's record may spell the name in any case: merge into that entry.
      const own = Object.keys(headers).find((k) => k.toLowerCase() === EXPOSE_HEADER) ?? EXPOSE_HEADER;
      const value = headers[own];
      const listed = listedNames(Array.isArray(value) ? value.join(',') : (value ?? ''));
      const missing = names.filter((name) => !listed.has(name));
      if (missing.length === 0) return;
      headers[own] = [...(Array.isArray(value) ? value : value ? [value] : []), ...missing].join(', ');
    },
  };
};

const EXPOSE_HEADER = 'access-control-expose-headers';

const isKeyed = (request: RequestHeaders): boolean => {
  for (const name of keyHeaderNames) if (request.get(name) !== undefined || request.get(`${name}s`) !== undefined) return true;
  return false;
};

/** `{"key":"status"}` without building an object for the common one-key request. */
const statusesJson = (statuses: Map<string, KeyStatus>): string => {
  if (statuses.size !== 1) return JSON.stringify(Object.fromEntries(statuses));
  for (const [key, status] of statuses) return `{${JSON.stringify(key)}:"${status}"}`;
  return '{}';
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
    const report = reportOf(request.carrier);
    if (report === undefined && !isKeyed(request)) return base;
    const sink = base.headers instanceof Headers ? headersSink(base.headers) : recordSink(base.headers);
    // Only a browser on another origin needs them exposed; it always sends Origin.
    if (request.get('origin') !== undefined) sink.expose(EXPOSED_HEADERS);
    if (opts.eagerGeneration) {
      // Streamed responses send their head before any call ran: say so, so clients don't guess.
      sink.set(STATUS_HEADER, STATUS_DEFERRED);
      return { ...base, headers: sink.headers };
    }
    if (!report) {
      // Keys came, but no idempotent procedure saw them: the client can tell its key was not protected.
      sink.set(STATUS_HEADER, '{}');
      return { ...base, headers: sink.headers };
    }
    sink.set(STATUS_HEADER, statusesJson(report.statuses));
    const batch = opts.info?.isBatchCall === true;
    if (batch) sink.set(STATUSES_HEADER, JSON.stringify(Array.from(report.byIndex, (s) => s ?? null)));
    if (!batch && report.statuses.size === 1 && report.statuses.values().next().value === 'replayed') {
      sink.set(REPLAYED_HEADER, 'true');
    }
    if (report.retryAfterMs > 0) sink.set(RETRY_AFTER_HEADER, String(Math.ceil(report.retryAfterMs / 1000)));
    return { ...base, headers: sink.headers };
  };
};

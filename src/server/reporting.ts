import type { AnyRouter } from '@trpc/server';
import type { ResponseMetaFn } from '@trpc/server/http';
import type { KeyStatus } from '../wire';
import {
  EXPOSED_HEADERS,
  MAX_REPORTED_CALLS,
  MAX_STATUS_LENGTH,
  NO_STATUS_LETTER,
  REPLAYED_HEADER,
  RETRY_AFTER_HEADER,
  STATUS_DEFERRED,
  STATUS_HEADER,
  STATUS_LETTERS,
  STATUSES_HEADER,
  STATUSES_OMITTED,
} from '../wire';
import { findRequestHeaders, readHeader } from './headers';
import type { RequestHeaders } from './headers';
import type { KeyHeaderNames } from './key';
import { keyHeaderNames } from './key';

interface RequestReport {
  /**
   * Keys of batch index 0 in the order first seen, and each one's latest status, for the per-key map of a
   * request with one call. Batches are reported by position only, so a batch's other calls add nothing here
   * (a lookup per call in a list of every key would be quadratic in the batch size). No Map: one key is usual.
   */
  keys: string[];
  statuses: KeyStatus[];
  /** A key came that `keys` had no room for (`MAX_MAPPED_KEYS`): the per-key map reads `omitted`. */
  overflow: boolean;
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
  (carrier as { [REPORT]?: RequestReport })[REPORT] ?? (Object.isExtensible(carrier) ? undefined : frozenReports.get(carrier));

const newReport = (carrier: object): RequestReport => {
  const report: RequestReport = { keys: [], statuses: [], overflow: false, byIndex: [], retryAfterMs: 0 };
  if (Object.isExtensible(carrier)) Object.defineProperty(carrier, REPORT, { value: report, configurable: true });
  else frozenReports.set(carrier, report);
  return report;
};
/** Header names the middleware reads, per request, so a streamed head can say `deferred` for keyed requests. */
const knownHeaderNames = new Map<string, KeyHeaderNames>();

export const rememberHeaderName = (headerName: string): void => {
  if (!knownHeaderNames.has(headerName)) knownHeaderNames.set(headerName, keyHeaderNames(headerName));
};

/**
 * Most keys the per-key map holds: past 34, its JSON (`"k":"executed",` is 15 characters at the least) cannot fit in
 * `MAX_STATUS_LENGTH` and reads `omitted` anyway. The bound matters where one carrier outlives a request: a
 * WebSocket connection's calls all share its upgrade request, and with `inputKey` or `getKey` every call brought a
 * new key, kept for the life of the connection and searched on each call (quadratic: 40,000 calls took 54 s).
 */
const MAX_MAPPED_KEYS = Math.floor((MAX_STATUS_LENGTH - 1) / 15);

/** Which call a report is about: its key, its position in the batch, and the HTTP request (if any) it came in. */
export interface ReportTarget {
  carrier: object | undefined;
  key: string;
  batchIndex: number;
}

/** Records what the middleware decided for one call, on the request its carrier identifies. */
export const reportKey = ({ carrier, key, batchIndex }: ReportTarget, status: KeyStatus, retryAfterMs?: number): void => {
  if (!carrier) return;
  const report = reportOf(carrier) ?? newReport(carrier);
  if (batchIndex === 0) {
    const seen = report.keys.indexOf(key);
    if (seen >= 0) {
      report.statuses[seen] = status;
    } else if (report.keys.length < MAX_MAPPED_KEYS) {
      report.keys.push(key);
      report.statuses.push(status);
    } else {
      report.overflow = true;
    }
  }
  report.byIndex[batchIndex] = status;
  if (retryAfterMs !== undefined) report.retryAfterMs = Math.max(report.retryAfterMs, retryAfterMs);
};

type HeaderRecord = Record<string, string | string[] | undefined>;

/** Our headers go into a copy of the user's (theirs may be shared): a `Headers`, or a plain record; tRPC copies either. */
type ResponseHeaders = Headers | HeaderRecord;

const copyHeaders = (base: Headers | HeaderRecord | undefined): ResponseHeaders =>
  base instanceof Headers ? new Headers(base) : base ? { ...base } : {};

const setHeader = (headers: ResponseHeaders, name: string, value: string): void => {
  if (headers instanceof Headers) headers.set(name, value);
  else headers[name] = value;
};

/** The names in an `Access-Control-Expose-Headers` value, lower-cased. */
const listedNames = (value: string): Set<string> => new Set(value.split(',').map((name) => name.trim().toLowerCase()));

/**
 * What the app already put in `Access-Control-Expose-Headers` on the Node response (the `cors` package's
 * `exposedHeaders`, or any middleware before tRPC). tRPC's Node adapters write our headers with `setHeader`, which
 * replaces that value, so it has to be part of ours. Found on `ctx.res`, or on `ctx.req.res` (Express sets it).
 */
const alreadyExposed = (ctx: unknown): string[] => {
  const context = ctx as { res?: unknown; req?: { res?: unknown } } | undefined;
  for (const res of [context?.res, context?.req?.res]) {
    const getHeader = (res as { getHeader?: unknown } | undefined)?.getHeader;
    if (typeof getHeader !== 'function') continue;
    const value: unknown = (getHeader as (name: string) => unknown).call(res, EXPOSE_HEADER);
    const joined = Array.isArray(value) ? value.join(',') : typeof value === 'string' ? value : '';
    return joined.split(',').map((name) => name.trim()).filter((name) => name !== '');
  }
  return [];
};

/** Adds `names` to `Access-Control-Expose-Headers`, keeping what is listed already and listing each name once. */
const exposeHeaders = (headers: ResponseHeaders, names: readonly string[]): void => {
  if (headers instanceof Headers) {
    const listed = listedNames(headers.get(EXPOSE_HEADER) ?? '');
    for (const name of names) {
      if (listed.has(name.toLowerCase())) continue;
      listed.add(name.toLowerCase());
      headers.append(EXPOSE_HEADER, name);
    }
    return;
  }
  // The user's record may spell the name in any case: merge into that entry.
  const own = Object.keys(headers).find((k) => k.toLowerCase() === EXPOSE_HEADER) ?? EXPOSE_HEADER;
  const value = headers[own];
  const listed = listedNames(Array.isArray(value) ? value.join(',') : (value ?? ''));
  const missing: string[] = [];
  for (const name of names) {
    if (listed.has(name.toLowerCase())) continue;
    listed.add(name.toLowerCase());
    missing.push(name);
  }
  if (missing.length === 0) return;
  headers[own] = [...(Array.isArray(value) ? value : value ? [value] : []), ...missing].join(', ');
};

const EXPOSE_HEADER = 'access-control-expose-headers';

const isKeyed = (request: RequestHeaders): boolean => {
  for (const names of knownHeaderNames.values()) {
    if (readHeader(request, names.single) !== undefined || readHeader(request, names.list) !== undefined) return true;
  }
  return false;
};

/** `{"key":"status"}` without building an object for the common one-key request; `omitted` past the budget. */
const statusJson = ({ keys, statuses, overflow }: RequestReport): string => {
  if (overflow) return STATUSES_OMITTED;
  const json =
    keys.length === 1
      ? `{${JSON.stringify(keys[0])}:"${statuses[0] as KeyStatus}"}`
      : JSON.stringify(Object.fromEntries(keys.map((key, i) => [key, statuses[i]])));
  return json.length > MAX_STATUS_LENGTH ? STATUSES_OMITTED : json;
};

/** One letter per batch position (`-` where nothing was reported), or `omitted` past `MAX_REPORTED_CALLS`. */
const statusLetters = (byIndex: readonly (KeyStatus | null)[], calls: number): string => {
  const length = Math.max(calls, byIndex.length);
  if (length > MAX_REPORTED_CALLS) return STATUSES_OMITTED;
  let letters = '';
  for (let i = 0; i < length; i++) {
    const status = byIndex[i];
    letters += status ? STATUS_LETTERS[status] : NO_STATUS_LETTER;
  }
  return letters;
};

/**
 * The adapter's `responseMeta`: reports per call whether it was a replay (`Idempotency-Statuses` by batch position
 * on a batch; `Idempotency-Status` and `Idempotent-Replayed` on a request with one call) and when to retry an
 * in-progress key (`Retry-After`), in at most `RESPONSE_HEADERS_BUDGET` bytes whatever the batch size. Pass your
 * own `responseMeta` to keep it: its status and headers are kept, ours are added. On cross-origin requests our
 * names join `Access-Control-Expose-Headers`, keeping what your `responseMeta` and (when ctx has `res`, or Express's
 * `req.res`) the Node response already expose.
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
    const headers = copyHeaders(base.headers);
    // Only a browser on another origin needs them exposed; it always sends Origin.
    if (readHeader(request, 'origin') !== undefined) exposeHeaders(headers, [...alreadyExposed(opts.ctx), ...EXPOSED_HEADERS]);
    if (opts.eagerGeneration) {
      // Streamed responses send their head before any call ran: say so, so clients don't guess.
      setHeader(headers, STATUS_HEADER, STATUS_DEFERRED);
      return { ...base, headers };
    }
    if (opts.info?.isBatchCall === true) {
      // By position only: a per-key map would grow the head by ~61 bytes per call, past what proxies accept.
      setHeader(headers, STATUSES_HEADER, statusLetters(report?.byIndex ?? [], opts.info.calls.length));
    } else {
      // `{}`: keys came, but no idempotent procedure saw them, so the client can tell its key was not protected.
      setHeader(headers, STATUS_HEADER, report ? statusJson(report) : '{}');
      if (report?.keys.length === 1 && report.statuses[0] === 'replayed') setHeader(headers, REPLAYED_HEADER, 'true');
    }
    if (report && report.retryAfterMs > 0) setHeader(headers, RETRY_AFTER_HEADER, String(Math.ceil(report.retryAfterMs / 1000)));
    return { ...base, headers };
  };
};

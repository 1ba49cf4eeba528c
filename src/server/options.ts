import type { TRPCError } from '@trpc/server';
import type { Clock } from '../clock';
import { systemClock } from '../clock';
import { DEFAULTS } from '../constants';
import { IdempotencyError } from '../errors';
import type { Serializer } from '../serialization';
import { superjsonSerializer } from '../serialization';
import type { IdempotencyStore } from '../store';
import { isTransactionalStore } from '../store';
import type { IdempotencyEvent, IdempotencyEventInfo } from './events';
import { MAX_INPUT_DEPTH_LIMIT } from './inputBudget';
import type { LocalCacheOptions } from '../stores/localCache';

export interface GetKeyOptions<TContext> {
  ctx: TContext;
  /** The input after transformer deserialization, before validation. */
  rawInput: unknown;
  path: string;
  /** Position of the call in an HTTP batch; 0 otherwise. */
  batchIndex: number;
}

/** Options that can be set once in `createIdempotency` and overridden per procedure in `idempotent()`. */
export interface IdempotentOptions<TContext = any> {
  /**
   * The procedure's stable name in record ids (per procedure only): keys are remembered per (scope, name, key).
   * Set it before renaming or moving a procedure, to its old path, and keys in flight or stored under the old
   * path keep replaying instead of running again. Two procedures with one name share their keys. Events and
   * error messages still report the path.
   * @default undefined (the procedure path, e.g. `'order.create'`)
   */
  name?: string | undefined;
  /**
   * Reads the key yourself; when set it is the only source. Return `undefined` for "no key".
   * @default undefined (input field `inputKey`, then the request headers)
   */
  getKey?: ((opts: GetKeyOptions<TContext>) => unknown) | undefined;
  /**
   * Name of an input field that carries the key (e.g. `'idempotencyKey'`), for callers without headers.
   * @default false
   */
  inputKey?: string | false;
  /**
   * Reject mutations that come without a key (BAD_REQUEST) instead of running them unguarded.
   * @default false
   */
  required?: boolean;
  /**
   * Whose key this is: e.g. the user or tenant id. Keys of different scopes never meet, so one user's key can
   * never replay another user's result. Values of different types are different scopes (`1`, `1n` and `"1"` are
   * three). Any other type is a server bug: INTERNAL_SERVER_ERROR, and the procedure does not run.
   *
   * `undefined` and `null` (and `""`) mean the one global scope, shared by every caller who gets it: when `scope`
   * returns `ctx.user?.id`, all anonymous callers share one scope, and one anonymous caller who learns another's
   * key gets that caller's stored result. Refuse anonymous mutations, or scope them by something of their own
   * (a session id).
   * @default undefined (one global scope)
   */
  scope?: ((opts: { ctx: TContext; path: string }) => string | number | bigint | null | undefined) | undefined;
  /**
   * How a retry proves it is the same request: `true` hashes the raw input (key order does not matter,
   * superjson types do), a function returns your own fingerprint, `false` turns the check off.
   * @default true
   */
  fingerprint?: boolean | ((rawInput: unknown) => string);
  /**
   * Deepest input the default fingerprint (`fingerprint: true`) accepts, in levels of objects, arrays, Maps and
   * Sets. A deeper input, or one that refers to itself, is refused with PAYLOAD_TOO_LARGE (reason
   * `input_too_large`) before anything is claimed or run. At most 1000.
   * @default 100
   */
  maxInputDepth?: number;
  /**
   * Most values (objects, arrays, their items, Map entries' keys and values, primitives) an input may hold for
   * the default fingerprint. An object reached by several paths counts once per path, as if it were sent as a
   * tree; past this the input is refused with PAYLOAD_TOO_LARGE before anything is claimed or run.
   * @default 100000
   */
  maxInputNodes?: number;
  /**
   * Most characters (UTF-16 code units) of strings and object keys an input may hold for the default
   * fingerprint, counted as for `maxInputNodes`; past this it is refused with PAYLOAD_TOO_LARGE.
   * @default 1048576 (1 Mi)
   */
  maxInputChars?: number;
  /**
   * A duplicate that arrives while the first call runs: `'reject'` answers CONFLICT with a retry hint,
   * `'wait'` waits up to `waitTimeoutMs` for the first call's result (CONFLICT on timeout).
   * @default 'reject'
   */
  onInProgress?: 'reject' | 'wait';
  /**
   * How long a duplicate waits with `onInProgress: 'wait'`.
   * @default 10000
   */
  waitTimeoutMs?: number;
  /**
   * How long a result is kept and replayed.
   * @default 86400000 (24 h)
   */
  ttlMs?: number;
  /**
   * How long a claim lives without renewal. The middleware renews it every `lockTtlMs / 3` while the procedure
   * runs, so this bounds how long a crashed process blocks the key.
   * @default 30000
   */
  lockTtlMs?: number;
  /**
   * Largest serialized result kept. A larger one completes the key with a marker: retries get CONFLICT
   * ("result not stored") instead of a second execution, and a `not_stored` event reports it.
   * @default 1048576 (1 MiB)
   */
  maxResultBytes?: number;
  /**
   * Which procedure errors are final and replayed to retries; the others release the key so a retry runs again.
   * @default defaultShouldStoreError (final client errors such as BAD_REQUEST, NOT_FOUND, FORBIDDEN, PAYMENT_REQUIRED)
   */
  shouldStoreError?: (error: TRPCError) => boolean;
  /**
   * When the store cannot be reached to claim: `'fail-closed'` answers SERVICE_UNAVAILABLE and does not run
   * the procedure; `'fail-open'` runs it unguarded (and reports a `store_error` event).
   * @default 'fail-closed'
   */
  onStoreError?: 'fail-closed' | 'fail-open';
  /**
   * Longest retry hint (`retryAfterMs`, `Retry-After`) given to a duplicate that finds its key in progress. The
   * lease says when a crashed owner's key frees up, but a live owner usually finishes much sooner, so clients
   * are told to come back soon rather than after the whole lease.
   * @default 1000
   */
  maxRetryAfterMs?: number;
  /**
   * Runs the procedure inside the store's database transaction: its queries on `ctx.idempotency.client`, the
   * claim and the stored result commit in one COMMIT, or nothing does (a crash before COMMIT leaves no row and no
   * claim: a retry runs at once). Needs a store with the transactional capability (`createPostgresStore`); any
   * other store, or `onStoreError: 'fail-open'`, is an INVALID_OPTION when `idempotent()` is called.
   * @default false
   */
  transactional?: boolean;
}

/** Options of `createIdempotency`. */
export interface IdempotencyOptions<TContext = any> extends Omit<IdempotentOptions<TContext>, 'name'> {
  /**
   * Where claims and results live. Use `createRedisStore` from `trpc-idempotency/redis` with several processes.
   * @default createMemoryStore() (one per createIdempotency call)
   */
  store?: IdempotencyStore;
  /**
   * Request header carrying the key (case-insensitive). Batches use the same name plus `s` (JSON array).
   * @default 'idempotency-key'
   */
  headerName?: string;
  /**
   * Turns results into stored text and back.
   * @default superjsonSerializer
   */
  serializer?: Serializer;
  /**
   * Called for every decision, with durations, and the call's tRPC `ctx` (to correlate with logs and traces);
   * errors it throws are ignored.
   * @default undefined
   */
  onEvent?: ((event: IdempotencyEvent, info: IdempotencyEventInfo<TContext>) => void) | undefined;
  /**
   * A per-process cache of completed records in front of the store: a replay of a key this process completed,
   * or has replayed before, is answered from memory with no store round trip (a retry storm on a hot key costs
   * the store one claim per process). Meant for shared stores (Redis); `{}` takes the default bounds
   * (`maxEntries` 1000, `maxBytes` 8 MiB, least recently used out first).
   *
   * Safe because a completed record never changes until it expires: an entry is kept no longer than its record
   * (`ttlMs` from when this process stored it, or the time left that the store reported when it was replayed;
   * a store that reports none, such as the memory store, has only its own completions cached). The one
   * exception is a record deleted by hand (or evicted by Redis under memory pressure): every process that
   * cached it keeps replaying it until its entry expires, where without the cache the key would run again.
   * Delete records only with the processes stopped, or leave this off.
   * @default false
   */
  localCache?: LocalCacheOptions | false;
  /**
   * Time source for leases, retries and waits. With `systemClock` itself, intervals are measured on
   * `performance.now()`, so a wall-clock step does not stretch a lease; any other clock (a test's manual clock, a
   * wrapper around `systemClock`) is used as it is.
   * @default systemClock
   */
  clock?: Clock;
}

/** TRPCError codes that are the final answer to a request: the same request would fail the same way again. */
const FINAL_CODES: ReadonlySet<TRPCError['code']> = new Set<TRPCError['code']>([
  'PARSE_ERROR',
  'BAD_REQUEST',
  'PAYMENT_REQUIRED',
  'FORBIDDEN',
  'NOT_FOUND',
  'METHOD_NOT_SUPPORTED',
  'CONFLICT',
  'PRECONDITION_FAILED',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNPROCESSABLE_CONTENT',
  'PRECONDITION_REQUIRED',
]);

/**
 * Stores final client errors; releases transient ones (TOO_MANY_REQUESTS, TIMEOUT, CLIENT_CLOSED_REQUEST),
 * UNAUTHORIZED (credentials can be fixed and the request retried), server errors and non-TRPC exceptions.
 */
export const defaultShouldStoreError = (error: TRPCError): boolean => FINAL_CODES.has(error.code);

export type ResolvedProcedureOptions = Required<
  Omit<IdempotentOptions, 'getKey' | 'scope' | 'name'>
> & Pick<IdempotentOptions, 'getKey' | 'scope' | 'name'>;

export type ResolvedGlobalOptions = ResolvedProcedureOptions & {
  store: IdempotencyStore | undefined;
  headerName: string;
  serializer: Serializer;
  onEvent: ((event: IdempotencyEvent, info: IdempotencyEventInfo<any>) => void) | undefined;
  clock: Clock;
  localCache: LocalCacheOptions | false;
};

const invalid = (where: string, name: string, rule: string): IdempotencyError =>
  new IdempotencyError('INVALID_OPTION', `${where}: option "${name}" ${rule}`);

const describe = (value: unknown): string => (typeof value === 'function' ? 'a function' : JSON.stringify(value) ?? String(value));

const checks: { [K in keyof IdempotencyOptions | keyof IdempotentOptions]-?: [rule: string, ok: (v: unknown) => boolean] } = {
  name: ['must be a non-empty string', (v) => typeof v === 'string' && v.length > 0],
  getKey: ['must be a function', (v) => typeof v === 'function'],
  inputKey: ['must be a non-empty string or false', (v) => v === false || (typeof v === 'string' && v.length > 0)],
  required: ['must be a boolean', (v) => typeof v === 'boolean'],
  scope: ['must be a function', (v) => typeof v === 'function'],
  fingerprint: ['must be a boolean or a function', (v) => typeof v === 'boolean' || typeof v === 'function'],
  maxInputDepth: [
    `must be a positive integer of at most ${MAX_INPUT_DEPTH_LIMIT}`,
    (v) => isPositiveInteger(v) && (v as number) <= MAX_INPUT_DEPTH_LIMIT,
  ],
  maxInputNodes: ['must be a positive integer', isPositiveInteger],
  maxInputChars: ['must be a positive integer', isPositiveInteger],
  onInProgress: ["must be 'reject' or 'wait'", (v) => v === 'reject' || v === 'wait'],
  waitTimeoutMs: ['must be a positive integer (ms)', isPositiveInteger],
  ttlMs: ['must be a positive integer (ms)', isPositiveInteger],
  lockTtlMs: ['must be an integer of at least 3 (ms)', (v) => isPositiveInteger(v) && (v as number) >= 3],
  maxResultBytes: ['must be a positive integer (bytes)', isPositiveInteger],
  shouldStoreError: ['must be a function', (v) => typeof v === 'function'],
  onStoreError: ["must be 'fail-closed' or 'fail-open'", (v) => v === 'fail-closed' || v === 'fail-open'],
  maxRetryAfterMs: ['must be a positive integer (ms)', isPositiveInteger],
  transactional: ['must be a boolean', (v) => typeof v === 'boolean'],
  store: ['must implement claim, renew, complete, release, wait and recordStep', isStore],
  headerName: ['must be a valid HTTP header name', (v) => typeof v === 'string' && /^[!#$%&'*+.^_`|~0-9a-z-]+$/i.test(v)],
  serializer: ['must have serialize and deserialize functions', isSerializer],
  onEvent: ['must be a function', (v) => typeof v === 'function'],
  localCache: ['must be false or { maxEntries?, maxBytes? } (positive integers)', isLocalCache],
  clock: ['must have now, setTimeout and clearTimeout', (v) => hasFunctions(v, ['now', 'setTimeout', 'clearTimeout'])],
};

function isPositiveInteger(v: unknown): boolean {
  return Number.isSafeInteger(v) && (v as number) > 0;
}
function hasFunctions(v: unknown, names: string[]): boolean {
  return typeof v === 'object' && v !== null && names.every((n) => typeof (v as Record<string, unknown>)[n] === 'function');
}
function isStore(v: unknown): boolean {
  return hasFunctions(v, ['claim', 'renew', 'complete', 'release', 'wait', 'recordStep']);
}
function isLocalCache(v: unknown): boolean {
  if (v === false) return true;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  return Object.entries(v).every(
    ([name, bound]) => (name === 'maxEntries' || name === 'maxBytes') && (bound === undefined || isPositiveInteger(bound)),
  );
}
function isSerializer(v: unknown): boolean {
  return hasFunctions(v, ['serialize', 'deserialize']);
}

const validate = (where: string, options: object, allowed: readonly string[]): void => {
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const check = checks[name as keyof typeof checks];
    if (!check || !allowed.includes(name)) throw invalid(where, name, 'is not an option here');
    if (!check[1](value)) throw invalid(where, name, `${check[0]}, got ${describe(value)}`);
  }
};

const PROCEDURE_KEYS = [
  'getKey', 'inputKey', 'required', 'scope', 'fingerprint', 'maxInputDepth', 'maxInputNodes', 'maxInputChars',
  'onInProgress', 'waitTimeoutMs', 'ttlMs', 'lockTtlMs', 'maxResultBytes', 'shouldStoreError', 'onStoreError',
  'name', 'transactional', 'maxRetryAfterMs',
] as const;
// `name` is per procedure only: one name on every procedure would make them all share their keys.
const GLOBAL_KEYS = [...PROCEDURE_KEYS.filter((key) => key !== 'name'), 'store', 'headerName', 'serializer', 'onEvent', 'clock', 'localCache'] as const;

const defined = <T extends object>(options: T): Partial<T> =>
  Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Merges defaults and validates once, when `createIdempotency` is called. */
export const resolveGlobalOptions = (options: IdempotencyOptions): ResolvedGlobalOptions => {
  validate('createIdempotency', options, GLOBAL_KEYS);
  const given = defined(options);
  return checkTransactional('createIdempotency', {
    getKey: given.getKey,
    scope: given.scope,
    inputKey: given.inputKey ?? DEFAULTS.inputKey,
    required: given.required ?? DEFAULTS.required,
    fingerprint: given.fingerprint ?? DEFAULTS.fingerprint,
    maxInputDepth: given.maxInputDepth ?? DEFAULTS.maxInputDepth,
    maxInputNodes: given.maxInputNodes ?? DEFAULTS.maxInputNodes,
    maxInputChars: given.maxInputChars ?? DEFAULTS.maxInputChars,
    onInProgress: given.onInProgress ?? DEFAULTS.onInProgress,
    waitTimeoutMs: given.waitTimeoutMs ?? DEFAULTS.waitTimeoutMs,
    ttlMs: given.ttlMs ?? DEFAULTS.ttlMs,
    lockTtlMs: given.lockTtlMs ?? DEFAULTS.lockTtlMs,
    maxResultBytes: given.maxResultBytes ?? DEFAULTS.maxResultBytes,
    shouldStoreError: given.shouldStoreError ?? defaultShouldStoreError,
    onStoreError: given.onStoreError ?? DEFAULTS.onStoreError,
    maxRetryAfterMs: given.maxRetryAfterMs ?? DEFAULTS.maxRetryAfterMs,
    store: given.store,
    headerName: (given.headerName ?? DEFAULTS.headerName).toLowerCase(),
    serializer: given.serializer ?? superjsonSerializer,
    onEvent: given.onEvent,
    clock: given.clock ?? systemClock,
    transactional: given.transactional ?? DEFAULTS.transactional,
    localCache: given.localCache ?? DEFAULTS.localCache,
  });
};

/** Applies one procedure's overrides on top of the instance's options, when `idempotent()` is called. */
export const resolveProcedureOptions = (
  base: ResolvedGlobalOptions,
  overrides: IdempotentOptions,
): ResolvedGlobalOptions => {
  validate('idempotent', overrides, PROCEDURE_KEYS);
  return checkTransactional('idempotent', { ...base, ...defined(overrides) });
};

/**
 * The transactional mode is a capability the store declares (see `TransactionalStore`), checked here once: the
 * middleware never branches on the store's type. It always fails closed: the procedure needs the transaction.
 */
const checkTransactional = (where: string, options: ResolvedGlobalOptions): ResolvedGlobalOptions => {
  if (!options.transactional) return options;
  if (!isTransactionalStore(options.store)) {
    throw invalid(
      where,
      'transactional',
      'needs a store with the transactional capability (createPostgresStore from trpc-idempotency/postgres); ' +
        `this one (${options.store === undefined ? 'the default memory store' : 'the given store'}) has none`,
    );
  }
  if (options.onStoreError === 'fail-open') {
    throw invalid(where, 'transactional', "cannot be combined with onStoreError 'fail-open': the procedure needs the transaction");
  }
  return options;
};

import { withLocalCache } from '../stores/localCache';
import { createMemoryStore } from '../stores/memoryStore';
import type { IdempotencyStore, TransactionalStore } from '../store';
import type { IdempotentMiddleware } from './middleware';
import { createMiddleware } from './middleware';
import type { IdempotencyOptions, IdempotentOptions } from './options';
import { resolveGlobalOptions, resolveProcedureOptions } from './options';
import { rememberHeaderName } from './reporting';
import type { TransactionalMiddleware } from './transactional';

/** The connection type a store's transactional mode hands the procedure (`unknown` for a store without one). */
export type TransactionClientOf<TStore> = TStore extends TransactionalStore<infer TClient> ? TClient : unknown;

export interface Idempotency<TContext = any, TStore extends IdempotencyStore = IdempotencyStore> {
  /**
   * A middleware for one mutation procedure: `.use(idempotent())`, with per-procedure overrides. With
   * `{ transactional: true }`, `ctx.idempotency.client` is the open transaction's connection, typed by the store
   * (`createIdempotency<Context, PostgresStore>` when you name the context type yourself).
   */
  idempotent: {
    (options: IdempotentOptions<TContext> & { transactional: true }): TransactionalMiddleware<TransactionClientOf<TStore>>;
    (options?: IdempotentOptions<TContext>): IdempotentMiddleware;
  };
  /** The store in use (the memory store when none was given); `localCache`, when on, sits in front of it. */
  store: TStore;
}

/**
 * One idempotency setup: a store and the defaults for every guarded procedure. Options are checked here, at
 * once; a bad one throws an IdempotencyError naming it.
 *
 * @example
 * const { idempotent } = createIdempotency<Context>({ store: createRedisStore({ redis }), scope: ({ ctx }) => ctx.user.id });
 * const createOrder = t.procedure.input(orderInput).use(idempotent()).mutation(({ input, ctx }) => ...);
 */
export const createIdempotency = <TContext = any, TStore extends IdempotencyStore = IdempotencyStore>(
  options: IdempotencyOptions<TContext> & { store?: TStore } = {},
): Idempotency<TContext, TStore> => {
  const resolved = resolveGlobalOptions(options);
  const store = resolved.store ?? createMemoryStore({ clock: resolved.clock });
  // One cache per createIdempotency, shared by its procedures (a record id names its path, so they never meet).
  const used = resolved.localCache ? withLocalCache(store, { ...resolved.localCache, clock: resolved.clock }) : store;
  rememberHeaderName(resolved.headerName);
  // The transactional mode reads and writes its record in the procedure's transaction: no cache in front of it.
  const idempotent = (overrides: IdempotentOptions<TContext> = {}): IdempotentMiddleware => {
    const procedure = resolveProcedureOptions(resolved, overrides);
    return createMiddleware(procedure, procedure.transactional ? store : used);
  };
  // The transactional overload differs in its context type only: the runtime is the same middleware.
  return { store: store as TStore, idempotent: idempotent as Idempotency<TContext, TStore>['idempotent'] };
};

/** The memory store behind the zero-config `idempotent`; `resetIdempotentStore` replaces it. */
let embeddedStore: IdempotencyStore | undefined;
let embedded: Idempotency | undefined;

/**
 * A store that forwards every call to the current embedded memory store. Routers call `idempotent()` once, when
 * their module loads, and each middleware keeps the store it was built with: forwarding is what lets a reset
 * reach middlewares built before it. A Proxy rather than a list of methods, so whatever the store contract
 * gains is forwarded too.
 */
const currentEmbeddedStore = (): IdempotencyStore =>
  new Proxy({} as IdempotencyStore, {
    get: (_target, name) => {
      embeddedStore ??= createMemoryStore();
      const value: unknown = Reflect.get(embeddedStore, name);
      return typeof value === 'function' ? value.bind(embeddedStore) : value;
    },
    has: (_target, name) => {
      embeddedStore ??= createMemoryStore();
      return Reflect.has(embeddedStore, name);
    },
  });

/**
 * Zero configuration: the middleware on a process-wide in-memory store, keys from the `Idempotency-Key` header.
 * Good for one process and for development; use `createIdempotency` with a Redis store for more. In tests, clear
 * that store between cases with `resetIdempotentStore()` from `trpc-idempotency/testing`.
 */
export const idempotent = (options?: IdempotentOptions): IdempotentMiddleware => {
  embedded ??= createIdempotency({ store: currentEmbeddedStore() });
  return embedded.idempotent(options);
};

/**
 * Forgets every key the zero-config `idempotent` has seen: its middlewares, those built before the call
 * included, use a new empty memory store from now on. For tests (`beforeEach(resetIdempotentStore)`); call it
 * between tests, not while guarded calls run (a call that claimed on the old store cannot complete on the new).
 */
export const resetIdempotentStore = (): void => {
  embeddedStore = createMemoryStore();
};

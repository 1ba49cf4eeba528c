import { withLocalCache } from '../stores/localCache';
import { createMemoryStore } from '../stores/memoryStore';
import type { IdempotencyStore } from '../store';
import type { IdempotentMiddleware } from './middleware';
import { createMiddleware } from './middleware';
import type { IdempotencyOptions, IdempotentOptions } from './options';
import { resolveGlobalOptions, resolveProcedureOptions } from './options';
import { rememberHeaderName } from './reporting';

export interface Idempotency<TContext = any> {
  /** A middleware for one mutation procedure: `.use(idempotent())`, with per-procedure overrides. */
  idempotent: (options?: IdempotentOptions<TContext>) => IdempotentMiddleware;
  /** The store in use (the memory store when none was given); `localCache`, when on, sits in front of it. */
  store: IdempotencyStore;
}

/**
 * One idempotency setup: a store and the defaults for every guarded procedure. Options are checked here, at
 * once; a bad one throws an IdempotencyError naming it.
 *
 * @example
 * const { idempotent } = createIdempotency<Context>({ store: createRedisStore({ redis }), scope: ({ ctx }) => ctx.user.id });
 * const createOrder = t.procedure.input(orderInput).use(idempotent()).mutation(({ input, ctx }) => ...);
 */
export const createIdempotency = <TContext = any>(options: IdempotencyOptions<TContext> = {}): Idempotency<TContext> => {
  const resolved = resolveGlobalOptions(options);
  const store = resolved.store ?? createMemoryStore({ clock: resolved.clock });
  // One cache per createIdempotency, shared by its procedures (a record id names its path, so they never meet).
  const used = resolved.localCache ? withLocalCache(store, { ...resolved.localCache, clock: resolved.clock }) : store;
  rememberHeaderName(resolved.headerName);
  return {
    store,
    idempotent: (overrides = {}) => createMiddleware(resolveProcedureOptions(resolved, overrides), used),
  };
};

let embedded: Idempotency | undefined;

/**
 * Zero configuration: the middleware on a process-wide in-memory store, keys from the `Idempotency-Key` header.
 * Good for one process and for development; use `createIdempotency` with a Redis store for more.
 */
export const idempotent = (options?: IdempotentOptions): IdempotentMiddleware => {
  embedded ??= createIdempotency();
  return embedded.idempotent(options);
};

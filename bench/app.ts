import type { IncomingMessage } from 'node:http';
import { initTRPC } from '@trpc/server';
import type { Redis } from 'ioredis';
import superjson from 'superjson';
import { createIdempotency, createMemoryStore } from '../src/index';
import type { IdempotencyStore } from '../src/index';
import { createRedisStore } from '../src/redis/index';
import type { BaselineKv } from './baseline';
import { baselineIdempotency, createMapKv, createRedisKv } from './baseline';

export type StoreKind = 'memory' | 'redis';
export type Transport = 'in-process' | 'http';
/** `cached`: ours with `localCache` on (Redis replay rows, in-process). */
export type Variant = 'bare' | 'ours' | 'baseline' | 'cached';
export type Scenario = 'fresh' | 'replay';

/** In-process calls carry the key in ctx; HTTP calls carry it in the Idempotency-Key header. */
export interface BenchContext {
  key?: string | undefined;
  req?: IncomingMessage | undefined;
}

export interface OrderInput {
  sku: string;
  quantity: number;
}

export const ORDER_INPUT: OrderInput = { sku: 'sku-123', quantity: 2 };

/** Procedure path per variant and scenario; fresh and replay get separate stores so fresh keys never evict the replay pool. */
export const procedurePath = (variant: Variant, scenario: Scenario): string =>
  variant === 'bare' ? 'bare' : `${variant}_${scenario}`;

export type BenchApp = ReturnType<typeof buildRouter>;

export interface AppOptions {
  store: StoreKind;
  transport: Transport;
  redis: Redis | undefined;
}

export const buildApp = (options: AppOptions): BenchApp => buildRouter(options);

// ---- internal helpers ----

const headerKey = (ctx: BenchContext): string | undefined => {
  const value = ctx.req?.headers['idempotency-key'];
  return typeof value === 'string' ? value : undefined;
};

function buildRouter({ store, transport, redis }: AppOptions) {
  const t = initTRPC.context<BenchContext>().create({ transformer: superjson });
  const executions = new Map<string, number>();
  let nextId = 0;
  const procedure = t.procedure.input((value) => value as OrderInput);
  const resolver = (path: string) => () => {
    executions.set(path, (executions.get(path) ?? 0) + 1);
    return { id: ++nextId, createdAt: new Date(), total: 42 };
  };

  const newStore = (): IdempotencyStore | undefined => {
    if (store === 'memory') return createMemoryStore();
    if (!redis) throw new Error('bench: redis rows need a redis client');
    return createRedisStore({ redis, prefix: 'bench:' });
  };
  // Users in-process pass the key through ctx; over HTTP the middleware reads the header by itself.
  const ours = (localCache: { maxEntries?: number } | false = false) =>
    createIdempotency<BenchContext>({
      store: newStore(),
      localCache,
      ...(transport === 'in-process' ? { getKey: ({ ctx }) => ctx.key } : {}),
    }).idempotent();
  const newKv = (): BaselineKv => (store === 'memory' ? createMapKv() : createRedisKv(redis as Redis));
  const baseline = () =>
    baselineIdempotency<BenchContext>({ kv: newKv(), keyOf: transport === 'in-process' ? (ctx) => ctx.key : headerKey });

  const router = t.router({
    bare: procedure.mutation(resolver('bare')),
    ours_fresh: procedure.use(ours()).mutation(resolver('ours_fresh')),
    ours_replay: procedure.use(ours()).mutation(resolver('ours_replay')),
    cached_replay: procedure.use(ours({})).mutation(resolver('cached_replay')),
    baseline_fresh: procedure.use(baseline()).mutation(resolver('baseline_fresh')),
    baseline_replay: procedure.use(baseline()).mutation(resolver('baseline_replay')),
  });
  return { router, executions, createCaller: t.createCallerFactory(router) };
}

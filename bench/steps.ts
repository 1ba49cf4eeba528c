import { randomUUID } from 'node:crypto';
import { initTRPC, TRPCError } from '@trpc/server';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import superjson from 'superjson';
import { createIdempotency, createMemoryStore } from '../src/index';
import type { IdempotencyStore } from '../src/index';
import { createRedisStore } from '../src/redis/index';
import { createPostgresStore, createPostgresTable } from '../src/stores/postgres/index';
import type { CommandMeter } from './commands';
import { runWindow } from './load';
import type { PgMeter } from './postgresServer';
import type { SectionCell, SectionMeasure, SectionPlan, SectionRow } from './sections';
import { extraRoundTrips, printSectionTable, runKeys, runSection } from './sections';

/**
 * The cost of a durable step (`--only steps`) on each store: the same guarded procedure with no step (`none`) and
 * with one (`step`, `ctx.idempotency.step('charge', fn)`), in-process, at concurrency 1 and 64:
 *
 *   fresh   a new key: the step runs and is recorded (PostgreSQL and Redis: one more request, unless batched)
 *   replay  a completed key: the stored result, the procedure and its steps untouched
 *   resume  a key whose first attempt recorded its step and then failed with SERVICE_UNAVAILABLE (released, steps
 *           kept; prepared before the window): the retry gets the step back with its claim and `fn` is not called
 *
 * Every window checks the procedure's executions and the step's `fn` calls against the scenario.
 */
export type StepStore = 'memory' | 'redis' | 'postgres';
const VARIANTS = ['none', 'step'] as const;
type StepVariant = (typeof VARIANTS)[number];
type StepScenario = 'fresh' | 'replay' | 'resume';

const CONCURRENCIES = [1, 64] as const;
const REPLAY_POOL = 256;

export interface StepBackends {
  redis?: { client: Redis; meter: CommandMeter } | undefined;
  postgres?: { pool: pg.Pool; meter: PgMeter } | undefined;
}

export const runStepsSection = async (backends: StepBackends, plan: SectionPlan): Promise<SectionRow[]> => {
  const stores: StepStore[] = ['memory'];
  if (backends.redis) stores.push('redis');
  if (backends.postgres) {
    stores.push('postgres');
    await createPostgresTable(backends.postgres.pool, 'bench_steps_store');
  }
  const apps: StepApp[] = [];
  try {
    const cells: SectionCell[] = [];
    for (const store of stores) {
      const app = buildStepApp(store, backends);
      apps.push(app);
      for (const scenario of ['fresh', 'replay', 'resume'] as const) {
        for (const concurrency of CONCURRENCIES) {
          const replayKeys = {} as Record<StepVariant, readonly string[]>;
          if (scenario === 'replay') {
            for (const variant of VARIANTS) {
              replayKeys[variant] = Array.from({ length: REPLAY_POOL }, () => randomUUID());
              for (const key of replayKeys[variant]) await app.call(`${variant}_replay`, key, false);
            }
          }
          const lastFresh = new Map<string, number>();
          cells.push({
            store,
            scenario,
            concurrency,
            variants: VARIANTS,
            reference: 'none',
            measure: async (variant, durationMs) => {
              const measured = await measureSteps({ app, variant: variant as StepVariant, scenario, concurrency, durationMs, replayKeys, lastFresh, backends });
              return measured;
            },
          });
        }
      }
    }
    const rows = await runSection(cells, plan, 'steps');
    printSectionTable(
      'Durable steps: one ctx.idempotency.step(...) vs none, in-process (createCaller)',
      rows,
      'x ref: median of per-round ops/s ratios against the same procedure without a step; round trips: Redis commands\n' +
        'the client sent per call (INFO commandstats; batched per tick, so below 1 at c=64) or PostgreSQL queries the pool\n' +
        'sent per call; stmts / db us: statements PostgreSQL ran and its execution time per call (pg_stat_statements).\n' +
        'resume: a key released after its step was recorded (prepared before the window), retried: the recorded step comes\n' +
        'back with the claim, fn is not called.',
    );
    for (const store of stores.filter((s) => s !== 'memory')) {
      const extra = (scenario: StepScenario): string => {
        const { value, reference } = extraRoundTrips(rows, { store, scenario, variant: 'step' });
        return `${scenario} ${value - reference >= 0 ? '+' : ''}${(value - reference).toFixed(2)}`;
      };
      console.log(`INFO ${store}: round trips a step adds per call at c=1: ${extra('fresh')}, ${extra('replay')}, ${extra('resume')}`);
    }
    return rows;
  } finally {
    for (const app of apps) await app.close();
  }
};

// ---- internal helpers ----

interface StepApp {
  store: StepStore;
  /** One call; `fail` makes the procedure throw SERVICE_UNAVAILABLE after its step (the key is released). */
  call(path: string, key: string, fail: boolean): Promise<void>;
  executions: Map<string, number>;
  stepCalls: () => number;
  close(): Promise<void>;
}

const buildStepApp = (kind: StepStore, backends: StepBackends): StepApp => {
  const t = initTRPC.context<{ key: string; fail: boolean }>().create({ transformer: superjson });
  const stores: IdempotencyStore[] = [];
  // A store per procedure, as main.ts does: fresh keys never evict the memory store's replay pool.
  const newStore = (): IdempotencyStore => {
    const store =
      kind === 'memory'
        ? createMemoryStore()
        : kind === 'redis'
          ? createRedisStore({ redis: (backends.redis as { client: Redis }).client, prefix: 'bench-steps:' })
          : createPostgresStore({ pool: (backends.postgres as { pool: pg.Pool }).pool, table: 'bench_steps_store' });
    stores.push(store);
    return store;
  };
  const executions = new Map<string, number>();
  let stepCalls = 0;
  const procedure = (variant: StepVariant, scenario: StepScenario) => {
    const path = `${variant}_${scenario}`;
    const { idempotent } = createIdempotency<{ key: string; fail: boolean }>({ store: newStore(), getKey: ({ ctx }) => ctx.key });
    return t.procedure.use(idempotent()).mutation(async ({ ctx }) => {
      executions.set(path, (executions.get(path) ?? 0) + 1);
      let chargeId = 'none';
      if (variant === 'step') {
        if (!ctx.idempotency) throw new Error('bench: the step procedure got no key');
        const charge = await ctx.idempotency.step('charge', ({ stepKey }) => {
          stepCalls++;
          return { chargeId: stepKey.slice(0, 12), at: new Date() };
        });
        chargeId = charge.chargeId;
      }
      if (ctx.fail) throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'bench: transient failure after the step' });
      return { id: 1, chargeId, createdAt: new Date(), total: 42 };
    });
  };
  const router = t.router({
    none_fresh: procedure('none', 'fresh'),
    none_replay: procedure('none', 'replay'),
    none_resume: procedure('none', 'resume'),
    step_fresh: procedure('step', 'fresh'),
    step_replay: procedure('step', 'replay'),
    step_resume: procedure('step', 'resume'),
  });
  const createCaller = t.createCallerFactory(router);
  return {
    store: kind,
    executions,
    stepCalls: () => stepCalls,
    call: async (path, key, fail) => {
      const caller = createCaller({ key, fail }) as unknown as Record<string, () => Promise<{ total: number }>>;
      const result = await (caller[path] as () => Promise<{ total: number }>)();
      if (result.total !== 42) throw new Error(`bench: ${path} returned ${JSON.stringify(result)}`);
    },
    close: async () => {
      for (const store of stores) await (store as { close?: () => Promise<void> | void }).close?.();
    },
  };
};

interface StepWindow {
  app: StepApp;
  variant: StepVariant;
  scenario: StepScenario;
  concurrency: number;
  durationMs: number;
  replayKeys: Record<StepVariant, readonly string[]>;
  /** ops/s of this cell's last fresh window per variant, to size the resume keys. */
  lastFresh: Map<string, number>;
  backends: StepBackends;
}

const measureSteps = async (w: StepWindow): Promise<SectionMeasure> => {
  const { app, variant, scenario, concurrency, durationMs, backends } = w;
  const path = `${variant}_${scenario}`;
  let resumeKeys: string[] = [];
  if (scenario === 'resume') {
    // About one window's worth of keys, each failed once after its step (its record released, the step kept).
    const count = Math.min(4000, Math.max(64, Math.round(((w.lastFresh.get(variant) ?? 2000) * durationMs) / 1000)));
    resumeKeys = Array.from({ length: count }, () => randomUUID());
    await Promise.all(
      Array.from({ length: 16 }, async (_, worker) => {
        for (let i = worker; i < resumeKeys.length; i += 16) {
          const failed = await app.call(path, resumeKeys[i] as string, true).then(
            () => false,
            (error: unknown) => error instanceof TRPCError && error.code === 'SERVICE_UNAVAILABLE',
          );
          if (!failed) throw new Error(`bench: preparing ${path}: the failing attempt did not fail with SERVICE_UNAVAILABLE`);
        }
      }),
    );
  }
  const redisMeter = app.store === 'redis' ? backends.redis?.meter : undefined;
  const pgMeter = app.store === 'postgres' ? backends.postgres?.meter : undefined;
  const ranBefore = app.executions.get(path) ?? 0;
  const stepsBefore = app.stepCalls();
  await redisMeter?.start();
  await pgMeter?.start();
  const cpuBefore = process.cpuUsage();
  const window =
    scenario === 'resume'
      ? await runKeys((key) => app.call(path, key, false), resumeKeys, concurrency)
      : await runWindow(
          (key) => app.call(path, key, false),
          scenario === 'replay' ? (seq) => w.replayKeys[variant][seq % REPLAY_POOL] as string : () => randomUUID(),
          { concurrency, durationMs },
        );
  const cpu = process.cpuUsage(cpuBefore);
  const pool = backends.postgres?.pool;
  if (pgMeter && pool) while (pool.idleCount < pool.totalCount) await new Promise((resolve) => setImmediate(resolve));
  const redisCount = await redisMeter?.stop(window.ops);
  const pgCount = await pgMeter?.stop(window.ops);
  if (scenario === 'fresh') w.lastFresh.set(variant, window.opsPerSec);

  const ran = (app.executions.get(path) ?? 0) - ranBefore;
  const stepRan = app.stepCalls() - stepsBefore;
  const expectedRan = scenario === 'replay' ? 0 : window.ops;
  const expectedSteps = scenario === 'fresh' && variant === 'step' ? window.ops : 0;
  if (ran !== expectedRan || stepRan !== expectedSteps) {
    throw new Error(
      `bench: ${path} (${app.store}) ran ${ran} times and its step ${stepRan} times for ${window.ops} calls, expected ${expectedRan} and ${expectedSteps}`,
    );
  }
  return {
    window,
    nodeCpuUs: (cpu.user + cpu.system) / Math.max(1, window.ops),
    roundTrips: redisCount?.perCall ?? pgCount?.queriesPerCall,
    statements: pgCount?.statementsPerCall,
    dbUs: pgCount?.execUsPerCall,
    detail: redisCount?.byCommand ?? pgCount?.byStatement,
  };
};

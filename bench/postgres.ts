import { randomUUID } from 'node:crypto';
import { initTRPC } from '@trpc/server';
import pg from 'pg';
import superjson from 'superjson';
import { createIdempotency } from '../src/index';
import { createPostgresStore, createPostgresTable } from '../src/stores/postgres/index';
import type { PostgresStore } from '../src/stores/postgres/index';
import type { OrderInput } from './app';
import { ORDER_INPUT } from './app';
import { runWindow } from './load';
import type { BenchPostgres, PgMeter } from './postgresServer';
import type { SectionCell, SectionMeasure, SectionPlan, SectionRow } from './sections';
import { extraRoundTrips, printSectionTable, runSection } from './sections';

/**
 * PostgreSQL rows (`--only postgres`): one order INSERT per call, in-process (createCaller), fresh keys and
 * replays of 256 completed keys, at concurrency 1 and 64, on the bench's own server:
 *
 *   plain  the procedure alone, its INSERT in its own transaction (BEGIN, INSERT, COMMIT on a pooled connection)
 *   store  idempotent() on createPostgresStore (store mode) around that same procedure
 *   tx     idempotent({ transactional: true }): the INSERT on ctx.idempotency.client, in the transaction that
 *          also claims the key and stores the result
 *
 * `plain` runs its INSERT on every call, replay rows included: it is the cost of the work itself.
 */
export const POSTGRES_VARIANTS = ['plain', 'store', 'tx'] as const;
type PgVariant = (typeof POSTGRES_VARIANTS)[number];

const CONCURRENCIES = [1, 64] as const;
const REPLAY_POOL = 256;
/** Connections of the pool every variant shares; at c=64 calls queue for them, as they would in an app. */
const POOL_MAX = 16;

export const runPostgresSection = async (server: BenchPostgres, meter: PgMeter, plan: SectionPlan): Promise<SectionRow[]> => {
  const pool = new pg.Pool({ connectionString: server.url, max: POOL_MAX });
  pool.on('error', () => undefined);
  meter.watch(pool);
  const table = 'bench_pg_store';
  await createPostgresTable(pool, table);
  await pool.query('CREATE TABLE IF NOT EXISTS bench_pg_orders (id bigserial PRIMARY KEY, sku text NOT NULL, quantity int NOT NULL)');
  const store = createPostgresStore({ pool, table });
  try {
    const app = buildPgApp(pool, store);
    const cells: SectionCell[] = [];
    for (const scenario of ['fresh', 'replay'] as const) {
      for (const concurrency of CONCURRENCIES) {
        const keys = {} as Record<PgVariant, (seq: number) => string>;
        for (const variant of POSTGRES_VARIANTS) {
          const fresh = (): string => randomUUID();
          if (scenario === 'fresh' || variant === 'plain') keys[variant] = fresh;
          else {
            const pool = Array.from({ length: REPLAY_POOL }, () => randomUUID());
            for (const key of pool) await app.call(pathOf(variant, scenario), key);
            keys[variant] = (seq) => pool[seq % REPLAY_POOL] as string;
          }
        }
        cells.push({
          store: 'postgres',
          scenario,
          concurrency,
          variants: POSTGRES_VARIANTS,
          reference: 'plain',
          measure: (variant, durationMs) =>
            measurePg({ app, pool, meter, path: pathOf(variant as PgVariant, scenario), nextKey: keys[variant as PgVariant], concurrency, durationMs, replay: scenario === 'replay' && variant !== 'plain' }),
        });
      }
    }
    const rows = await runSection(cells, plan, 'postgres');
    printSectionTable(
      `PostgreSQL ${server.version}, in-process (createCaller), pool of ${POOL_MAX} connections; plain = BEGIN, INSERT, COMMIT without the middleware`,
      rows,
      'x ref: median of per-round ops/s ratios against plain; round trips: queries the pool sent per call (client side,\n' +
        'one exchange each); stmts: statements PostgreSQL ran per call (pg_stat_statements, top level: the transactional\n' +
        "mode sends BEGIN; SELECT tx_claim(...); SAVEPOINT as one query string); db us: PostgreSQL's execution time per call\n" +
        "(pg_stat_statements total_exec_time); node us: this process's CPU per call. A tx replay's ROLLBACK goes after the answer.",
    );
    const trips = (variant: PgVariant, scenario: 'fresh' | 'replay'): string => {
      const { value, reference } = extraRoundTrips(rows, { store: 'postgres', scenario, variant });
      return `${scenario} ${value.toFixed(2)} (plain ${reference.toFixed(2)}, ${value - reference >= 0 ? '+' : ''}${(value - reference).toFixed(2)})`;
    };
    console.log(`INFO postgres round trips per call at c=1, store mode: ${trips('store', 'fresh')}, ${trips('store', 'replay')}`);
    console.log(`INFO postgres round trips per call at c=1, transactional: ${trips('tx', 'fresh')}, ${trips('tx', 'replay')}, its ROLLBACK after the answer`);
    return rows;
  } finally {
    await store.close();
    await pool.query('DROP TABLE IF EXISTS bench_pg_orders').catch(() => undefined);
    await pool.end();
  }
};

// ---- internal helpers ----

const pathOf = (variant: PgVariant, scenario: 'fresh' | 'replay'): string => (variant === 'plain' ? 'plain' : `${variant}_${scenario}`);

interface PgApp {
  call(path: string, key: string): Promise<void>;
  executions: Map<string, number>;
}

const buildPgApp = (pool: pg.Pool, store: PostgresStore): PgApp => {
  const t = initTRPC.context<{ key: string }>().create({ transformer: superjson });
  const { idempotent } = createIdempotency<{ key: string }, PostgresStore>({ store, getKey: ({ ctx }) => ctx.key });
  const executions = new Map<string, number>();
  const insert = 'INSERT INTO bench_pg_orders (sku, quantity) VALUES ($1, $2)';
  const procedure = t.procedure.input((value) => value as OrderInput);
  const counted = (path: string): void => void executions.set(path, (executions.get(path) ?? 0) + 1);
  // The procedure as written without the middleware: the INSERT in a transaction of its own.
  const ownTransaction =
    (path: string) =>
    async ({ input }: { input: OrderInput }) => {
      counted(path);
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(insert, [input.sku, input.quantity]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
      return { id: 1, createdAt: new Date(), total: 42 };
    };
  const transactional = (path: string) =>
    procedure.use(idempotent({ transactional: true })).mutation(async ({ ctx, input }) => {
      counted(path);
      if (!ctx.idempotency) throw new Error('bench: the transactional procedure got no key');
      await ctx.idempotency.client.query(insert, [input.sku, input.quantity]);
      return { id: 1, createdAt: new Date(), total: 42 };
    });
  const router = t.router({
    plain: procedure.mutation(ownTransaction('plain')),
    store_fresh: procedure.use(idempotent()).mutation(ownTransaction('store_fresh')),
    store_replay: procedure.use(idempotent()).mutation(ownTransaction('store_replay')),
    tx_fresh: transactional('tx_fresh'),
    tx_replay: transactional('tx_replay'),
  });
  const createCaller = t.createCallerFactory(router);
  return {
    executions,
    call: async (path, key) => {
      const caller = createCaller({ key }) as unknown as Record<string, (input: unknown) => Promise<{ total: number }>>;
      const result = await (caller[path] as (input: unknown) => Promise<{ total: number }>)(ORDER_INPUT);
      if (result.total !== 42) throw new Error(`bench: ${path} returned ${JSON.stringify(result)}`);
    },
  };
};

interface PgWindow {
  app: PgApp;
  pool: pg.Pool;
  meter: PgMeter;
  path: string;
  nextKey: (seq: number) => string;
  concurrency: number;
  durationMs: number;
  replay: boolean;
}

const measurePg = async ({ app, pool, meter, path, nextKey, concurrency, durationMs, replay }: PgWindow): Promise<SectionMeasure> => {
  const ranBefore = app.executions.get(path) ?? 0;
  await meter.start();
  const cpuBefore = process.cpuUsage();
  const window = await runWindow((key) => app.call(path, key), nextKey, { concurrency, durationMs });
  const cpu = process.cpuUsage(cpuBefore);
  // A transactional replay sends its ROLLBACK after answering: count once every connection is back.
  while (pool.idleCount < pool.totalCount) await new Promise((resolve) => setImmediate(resolve));
  const count = await meter.stop(window.ops);
  const ran = (app.executions.get(path) ?? 0) - ranBefore;
  const expected = replay ? 0 : window.ops;
  if (ran !== expected) throw new Error(`bench: ${path} (postgres) ran ${ran} times for ${window.ops} calls, expected ${expected}`);
  return {
    window,
    nodeCpuUs: (cpu.user + cpu.system) / Math.max(1, window.ops),
    roundTrips: count.queriesPerCall,
    statements: count.statementsPerCall,
    dbUs: count.execUsPerCall,
    detail: count.byStatement,
  };
};

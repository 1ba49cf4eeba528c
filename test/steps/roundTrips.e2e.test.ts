import { randomUUID } from 'node:crypto';
import { initTRPC, TRPCError } from '@trpc/server';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdempotency } from '../../src/index';
import type { IdempotencyStore } from '../../src/index';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStore } from '../../src/stores/postgres';
import { postgresTarget } from '../helpers/postgresClients';
import type { PostgresServer } from '../helpers/postgresServer';
import { startPostgresServer } from '../helpers/postgresServer';
import type { MonitoredStore } from '../helpers/redisMonitor';
import { monitoredStore } from '../helpers/redisMonitor';

/**
 * An order of steps a, b (then a transient failure), retried: the retry replays a and b and records c. Returns
 * what each call cost, as `record` counts it.
 */
const makeOrder = (store: IdempotencyStore) => {
  const t = initTRPC.context<{ headers: Record<string, string> }>().create();
  const { idempotent } = createIdempotency({ store });
  let fail = true;
  const router = t.router({
    order: t.procedure.use(idempotent()).mutation(async ({ ctx }) => {
      const steps = ctx.idempotency;
      if (!steps) throw new Error('no key');
      const a = await steps.step('a', () => 1);
      const b = await steps.step('b', () => 2);
      if (fail) {
        fail = false;
        throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'transient' });
      }
      const c = await steps.step('c', () => 3);
      return a + b + c;
    }),
  });
  return (key: string) => t.createCallerFactory(router)({ headers: { 'idempotency-key': key } }).order();
};

// Round trips as the servers count them: a replayed step costs none, a new step one.
describe('durable steps on Redis: commands per step (MONITOR)', () => {
  let m: MonitoredStore;
  beforeAll(async () => {
    m = await monitoredStore();
    await m.store.recordStep({ id: randomUUID(), token: 'w', name: 'warm', text: 'x', keepMs: 1_000 }); // EVAL once
  });
  afterAll(async () => m?.close());

  it('records each new step in one script run and replays recorded steps with the claim, at no cost', async () => {
    const order = makeOrder(m.store);
    const key = randomUUID();
    const first = await m.monitor.record(() => order(key).catch(() => {}));
    // claim, step a, step b, release
    expect(first.map((c) => c.name)).toEqual(['evalsha', 'evalsha', 'evalsha', 'evalsha']);
    const retry = await m.monitor.record(async () => expect(await order(key)).toBe(6));
    // claim (with a and b), step c, complete
    expect(retry.map((c) => c.name)).toEqual(['evalsha', 'evalsha', 'evalsha']);
    console.info(`Redis: first attempt with 2 new steps ${first.length} commands, retry replaying 2 and recording 1: ${retry.length}`);
  });
});

describe.runIf(postgresTarget().canSpawn)('durable steps on PostgreSQL: statements per step (pg_stat_statements)', () => {
  let server: PostgresServer;
  let pool: pg.Pool;
  let stats: pg.Client;
  let store: PostgresStore;
  const table = 'step_trips';

  beforeAll(async () => {
    server = await startPostgresServer({
      settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top' },
    });
    stats = new pg.Client({ connectionString: server.url });
    await stats.connect();
    await stats.query('CREATE EXTENSION pg_stat_statements');
    pool = new pg.Pool({ connectionString: server.url, max: 4 });
    pool.on('error', () => {});
    await createPostgresTable(pool, table);
    store = createPostgresStore({ pool, table });
  });
  afterAll(async () => {
    await store?.close();
    await pool?.end();
    await stats?.end();
    await server?.stop();
  });

  const calls = async (): Promise<Map<string, number>> => {
    const { rows } = await stats.query<{ query: string; calls: string }>(
      "SELECT query, calls::text FROM pg_stat_statements WHERE query LIKE '%step_trips_%'",
    );
    const byFunction = new Map<string, number>();
    for (const { query, calls: n } of rows) {
      const fn = /step_trips_([a-z]+)_v1/.exec(query)?.[1] ?? query;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + Number(n));
    }
    return byFunction;
  };
  const record = async (action: () => Promise<unknown>): Promise<string[]> => {
    const before = await calls();
    await action();
    const after = await calls();
    const ran: string[] = [];
    for (const [fn, n] of after) for (let i = 0; i < n - (before.get(fn) ?? 0); i++) ran.push(fn);
    return ran.sort();
  };

  it('records each new step in one statement and replays recorded steps with the claim, at no cost', async () => {
    const order = makeOrder(store);
    const key = randomUUID();
    const first = await record(() => order(key).catch(() => {}));
    expect(first).toEqual(['claim', 'release', 'step', 'step']);
    const retry = await record(async () => expect(await order(key)).toBe(6));
    expect(retry).toEqual(['claim', 'complete', 'step']);
    console.info(`PostgreSQL: first attempt with 2 new steps ${first.length} statements, retry replaying 2 and recording 1: ${retry.length}`);
  });
});

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Interface } from 'node:readline';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import type pg from 'pg';
import superjson from 'superjson';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresTable } from '../../src/stores/postgres';
import { connectPool, dropTable, postgresTarget, randomTable } from '../helpers/postgresClients';
import type { AppRouter } from './fixtures/transactionalApp';
import { appTablesSql } from './fixtures/transactionalApp';

interface AppProcess {
  url: string;
  child: ChildProcess;
  lines: Interface;
}

const startApp = async (env: Record<string, string>): Promise<AppProcess> => {
  // node itself with tsx as a loader (not the tsx CLI, which runs the app in a child of its own): SIGKILL must
  // reach the process that holds the transaction.
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures/transactionalServer.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => Promise.reject(new Error(`transactionalServer exited with ${String(code)}`))),
  ])) as [string];
  return { url: (JSON.parse(line) as { url: string }).url, child, lines };
};

const stopApp = async (app: AppProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
  if (!app || app.child.exitCode !== null || app.child.signalCode !== null) return;
  const exited = once(app.child, 'exit');
  app.child.kill(signal);
  await exited;
};

type CallResult = { ok: true; data: unknown } | { ok: false; code: string };

const call = async (url: string, key: string, item = 'book'): Promise<CallResult> => {
  const client = createTRPCClient<AppRouter>({
    links: [httpLink({ url, transformer: superjson, headers: { 'idempotency-key': key } })],
  });
  try {
    return { ok: true, data: await client.order.mutate({ item }) };
  } catch (error) {
    if (error instanceof TRPCClientError) return { ok: false, code: String(error.data?.code), message: error.message } as CallResult;
    throw error;
  }
};

// Real app processes on one PostgreSQL: the business row and the record commit together, whatever happens.
describe('transactional mode across app processes', () => {
  let pool: pg.Pool;
  const table = randomTable();
  const orders = `${table}_orders`;
  const runs = `${table}_runs`;
  const env = { DATABASE_URL: postgresTarget().url, TABLE: table, ORDERS: orders, RUNS: runs };
  const count = async (of: string, where = 'true'): Promise<number> =>
    Number((await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${of} WHERE ${where}`)).rows[0]?.n);

  beforeAll(async () => {
    pool = connectPool();
    await createPostgresTable(pool, table);
    await pool.query(appTablesSql({ orders, runs }));
  });
  afterAll(async () => {
    await pool.query(`DROP TABLE IF EXISTS ${orders}, ${runs}`);
    await dropTable(pool, table);
    await pool.end();
  });

  it('runs 2 processes x 200 calls with one key exactly once: 1 business row, 1 execution', async () => {
    // 200 calls at once on a pool of 10 connections queue for one: a generous bound keeps a loaded machine from
    // answering SERVICE_UNAVAILABLE (pool exhausted, nothing run), which is not what this test is about.
    const burst = { ...env, OPERATION_TIMEOUT_MS: '15000' };
    const [rejecting, waiting] = await Promise.all([
      startApp({ ...burst, ON_IN_PROGRESS: 'reject' }),
      startApp({ ...burst, ON_IN_PROGRESS: 'wait' }),
    ]);
    try {
      const key = randomUUID();
      const results = await Promise.all(
        Array.from({ length: 400 }, (_, i) => call(i % 2 === 0 ? rejecting.url : waiting.url, key, 'burst')),
      );
      expect(await count(orders, "item = 'burst'")).toBe(1);
      expect(await count(runs, "item = 'burst'")).toBe(1);
      const successes = results.filter((r): r is { ok: true; data: unknown } => r.ok);
      const failures = results.filter((r): r is { ok: false; code: string } => !r.ok);
      for (const success of successes) expect(success.data).toEqual(successes[0]?.data);
      for (const failure of failures) expect(failure.code, (failure as { message?: string }).message).toBe('CONFLICT');
      expect(results.filter((_, i) => i % 2 === 1).every((r) => r.ok)).toBe(true);
      const replays = await Promise.all(Array.from({ length: 20 }, (_, i) => call(i % 2 ? rejecting.url : waiting.url, key, 'burst')));
      for (const replay of replays) expect(replay).toEqual({ ok: true, data: successes[0]?.data });
      expect(await count(runs, "item = 'burst'")).toBe(1);
    } finally {
      await Promise.all([stopApp(rejecting), stopApp(waiting)]);
    }
  }, 60_000);

  it('leaves no business row and no claim when the app is SIGKILLed after its INSERT; a retry runs at once', async () => {
    const doomed = await startApp({ ...env, ON_IN_PROGRESS: 'reject', HOLD_AFTER_INSERT: '1' });
    const healthy = await startApp({ ...env, ON_IN_PROGRESS: 'reject' });
    try {
      const key = randomUUID();
      const inserted = once(doomed.lines, 'line');
      const pending = call(doomed.url, key, 'killed');
      const [line] = (await Promise.race([inserted, pending.then((r) => Promise.reject(new Error(`answered: ${JSON.stringify(r)}`)))])) as [string];
      const { inserted: pid } = JSON.parse(line) as { inserted: number };
      // The transaction is open, its INSERT done; nothing is visible yet.
      expect(await count(orders, "item = 'killed'")).toBe(0);
      await stopApp(doomed, 'SIGKILL');
      // The caller gets no answer from the dead process (a network error: its client may retry).
      expect(await pending).toMatchObject({ ok: false, code: 'undefined', message: expect.stringMatching(/fetch failed|socket|ECONNRESET/i) });
      // The backend notices the closed socket and rolls back: wait for it to go (no sleep: poll the server).
      let gone = false;
      for (let i = 0; i < 200 && !gone; i++) {
        const { rows } = await pool.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
        gone = rows.length === 0;
        if (!gone) await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(gone).toBe(true);
      expect(await count(orders, "item = 'killed'")).toBe(0);
      expect(await count(table)).toBe(0 + (await count(table, "state = 'c'"))); // no in-progress claim left
      const retry = await call(healthy.url, key, 'killed');
      expect(retry).toMatchObject({ ok: true, data: { item: 'killed', takeover: false } });
      expect(await count(orders, "item = 'killed'")).toBe(1);
      expect(await call(healthy.url, key, 'killed')).toEqual(retry);
      expect(await count(orders, "item = 'killed'")).toBe(1);
      expect(await count(runs, "item = 'killed'")).toBe(2); // the killed run and the retry
    } finally {
      await Promise.all([stopApp(doomed, 'SIGKILL'), stopApp(healthy)]);
    }
  }, 60_000);
});

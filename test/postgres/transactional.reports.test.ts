import { randomUUID } from 'node:crypto';
import { initTRPC, TRPCError } from '@trpc/server';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createIdempotency } from '../../src/index';
import type { IdempotencyEvent } from '../../src/index';
import { createPostgresStore } from '../../src/stores/postgres';
import type { PostgresStore } from '../../src/stores/postgres';
import { createManualClock } from '../helpers/manualClock';
import { startServer } from '../server/helpers';
import type { AppContext } from './fixtures/transactionalBehaviour';
import { deferredUniqueSql, appOf, insertItem, counterOf } from './fixtures/transactionalBehaviour';

// The events and Idempotency-Status reports of idempotent({ transactional: true }), on real PostgreSQL.

describe('idempotent({ transactional: true }): events and reports', () => {
  it('reports claimed, completed and released with the durations of the injected clock', async () => {
    const clock = createManualClock();
    const app = await appOf(
      async (args) => {
        await clock.advance(250);
        if (args.item === 'final') throw new TRPCError({ code: 'BAD_REQUEST', message: 'no stock' });
        if (args.item === 'transient') throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'try later' });
        if (args.item === 'deferred') await args.tx.client.query(`INSERT INTO ${checked} (v) VALUES (1), (1)`);
        return insertItem(args);
      },
      { idempotency: { clock } },
    );
    const checked = `${app.table}_checked`;
    await app.pool.query(deferredUniqueSql(checked));
    const eventsOf = async (item: string) => {
      app.events.length = 0;
      const key = randomUUID();
      await app.call(key, item).catch(() => {});
      return app.events.map(({ keyHash: _keyHash, ...event }) => event);
    };
    const stored = async (): Promise<number> =>
      Number((await app.pool.query<{ n: number }>(`SELECT max(octet_length(result)) AS n FROM ${app.table}`)).rows[0]?.n);
    try {
      const ok = await eventsOf('ok');
      const fence = (ok[0] as { fence: number }).fence;
      expect(ok).toEqual([
        { type: 'claimed', fence, takeover: false, durationMs: 0, path: 'order' },
        { type: 'completed', bytes: await stored(), outcome: 'ok', durationMs: 250, path: 'order' },
      ]);
      await app.pool.query(`DELETE FROM ${app.table}`);
      expect((await eventsOf('final'))[1]).toEqual({ type: 'completed', bytes: await stored(), outcome: 'error', durationMs: 250, path: 'order' });
      expect((await eventsOf('transient'))[1]).toEqual({ type: 'released', code: 'INTERNAL_SERVER_ERROR', durationMs: 250, path: 'order' });
      const deferredEvents = await eventsOf('deferred');
      expect(deferredEvents.slice(1)).toEqual([
        { type: 'store_error', operation: 'complete', error: expect.objectContaining({ code: '23505' }), failedOpen: false, path: 'order' },
        { type: 'released', code: 'INTERNAL_SERVER_ERROR', durationMs: 250, path: 'order' },
      ]);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${checked}`);
      await app.close();
    }
  });

  it("reports each key's fate in Idempotency-Status: executed, released, store_unavailable", async () => {
    const app = await appOf(
      async (args) => {
        if (args.item === 'transient') throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'try later' });
        if (args.item === 'deferred') await args.tx.client.query(`INSERT INTO ${checked} (v) VALUES (1), (1)`);
        if (args.item === 'conflict') {
          await args.pool.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
          await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
        }
        return insertItem(args);
      },
      { store: { isolationLevel: 'repeatable read' } },
    );
    const checked = `${app.table}_checked`;
    await app.pool.query(deferredUniqueSql(checked));
    const counter = await counterOf(app.pool, `${app.table}_counter`);
    const fate = async (item: string) => {
      const key = randomUUID();
      const { status, report } = await app.post(key, item);
      return { status, report: (report as Record<string, string>)[key] };
    };
    try {
      expect(await fate('ok')).toEqual({ status: 200, report: 'executed' });
      expect(await fate('transient')).toEqual({ status: 500, report: 'released' });
      expect(await fate('deferred')).toEqual({ status: 500, report: 'released' });
      expect(await fate('forgetful')).toEqual({ status: 500, report: 'released' });
      expect(await fate('conflict')).toEqual({ status: 503, report: 'store_unavailable' });
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${checked}, ${counter}`);
      await app.close();
    }
  });

  it('reports an unreachable database as a store_error of the claim and store_unavailable, the driver’s error kept', async () => {
    const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/none', max: 2 });
    pool.on('error', () => {});
    // Long enough that only an error of the connection itself can answer in time.
    const store = createPostgresStore({ pool, operationTimeoutMs: 20_000, sweepIntervalMs: 0 });
    const events: IdempotencyEvent[] = [];
    const t = initTRPC.context<AppContext>().create();
    const { idempotent } = createIdempotency<AppContext, PostgresStore>({ store, onEvent: (event) => events.push(event) });
    let ran = 0;
    const router = t.router({
      order: t.procedure.use(idempotent({ transactional: true })).mutation(() => ++ran),
    });
    const server = await startServer(router);
    try {
      const response = await fetch(`${server.url}/order`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'k1' } });
      expect(response.status).toBe(503);
      expect(JSON.parse(response.headers.get('idempotency-status') ?? 'null')).toEqual({ k1: 'store_unavailable' });
      expect(events.map(({ keyHash: _keyHash, ...event }) => event)).toEqual([
        { type: 'store_error', operation: 'claim', error: expect.any(Error), failedOpen: false, path: 'order' },
      ]);
      const { error } = events[0] as { error: Error };
      expect(error.message).toMatch(/^trpc-idempotency: postgres connection failed: .*ECONNREFUSED.*; the procedure was not run$/);
      expect(ran).toBe(0);
    } finally {
      await server.close();
      await store.close();
      await pool.end();
    }
  });
});


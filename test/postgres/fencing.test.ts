import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresStore, createPostgresTable } from '../../src/stores/postgres';
import type { PostgresStore } from '../../src/stores/postgres';
import type { ClaimOutcome } from '../../src/store';
import { connectPool, dropTable, randomTable, sleep } from '../helpers/postgresClients';

const fenceOf = (outcome: ClaimOutcome): number => {
  if (outcome.status !== 'acquired') throw new Error(`expected acquired, got ${JSON.stringify(outcome)}`);
  return outcome.fence;
};

describe('createPostgresStore fencing tokens', () => {
  let pool: pg.Pool;
  let store: PostgresStore;
  const table = randomTable();
  const lockTtlMs = 100;

  beforeAll(async () => {
    pool = connectPool();
    await createPostgresTable(pool, table);
    store = createPostgresStore({ pool, table, leaseGraceMs: 0, releasedTtlMs: 50, sweepIntervalMs: 0 });
  });
  afterAll(async () => {
    await store.close();
    await dropTable(pool, table);
    await pool.end();
  });

  const rowCount = async (id: string): Promise<number> =>
    Number((await pool.query(`SELECT count(*) AS n FROM ${table} WHERE id = $1`, [id])).rows[0].n);

  it('grows strictly across takeovers, releases, expiry and deletion of the row', async () => {
    const id = randomUUID();
    const fences: number[] = [];
    const take = async (expectTakeover: boolean) => {
      const outcome = await store.claim({ id, token: randomUUID(), fingerprint: 'f', partition: 'p', lockTtlMs });
      expect(outcome).toMatchObject({ status: 'acquired', takeover: expectTakeover });
      fences.push(fenceOf(outcome));
      return outcome;
    };
    await take(false);
    // The lease runs out; with no grace the row counts as absent at once, so the next claim is fresh, not a takeover.
    await sleep(lockTtlMs + 30);
    await take(false);
    await sleep(lockTtlMs + 30);
    // Released, then the released row expires and the sweep deletes it: the fence still grows.
    const token = randomUUID();
    fences.push(fenceOf(await store.claim({ id, token, fingerprint: 'f', partition: 'p', lockTtlMs: 10_000 })));
    expect(await store.release({ id, token })).toEqual({ status: 'ok' });
    await sleep(80);
    expect(await store.sweep()).toBeGreaterThanOrEqual(1);
    expect(await rowCount(id)).toBe(0);
    await take(false);
    for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1] as number);
  });

  it('reports a takeover (takeover: true) while the crashed owner is within its grace, with a larger fence', async () => {
    const graceStore = createPostgresStore({ pool, table, leaseGraceMs: 60_000, sweepIntervalMs: 0 });
    const id = randomUUID();
    const first = randomUUID();
    const fence1 = fenceOf(await graceStore.claim({ id, token: first, fingerprint: 'f', partition: 'p', lockTtlMs }));
    await sleep(lockTtlMs + 30);
    const second = randomUUID();
    const takeover = await graceStore.claim({ id, token: second, fingerprint: 'f', partition: 'p', lockTtlMs: 10_000 });
    expect(takeover).toMatchObject({ status: 'acquired', takeover: true });
    expect(fenceOf(takeover)).toBeGreaterThan(fence1);
    // The first owner is fenced off: its late completion is refused and the new owner's row is intact.
    expect(await graceStore.complete({ id, token: first, result: 'stale', ttlMs: 60_000 })).toEqual({ status: 'lost' });
    expect(await graceStore.complete({ id, token: second, result: 'fresh', ttlMs: 60_000 })).toEqual({ status: 'ok' });
    expect(await graceStore.claim({ id, token: randomUUID(), fingerprint: 'f', partition: 'p', lockTtlMs })).toEqual({
      status: 'completed',
      result: 'fresh',
    });
    await graceStore.close();
  });

  it('gives one of 50 concurrent takeovers of an expired lease the key, with the largest fence yet', async () => {
    const id = randomUUID();
    const fence1 = fenceOf(await store.claim({ id, token: randomUUID(), fingerprint: 'f', partition: 'p', lockTtlMs: 50 }));
    await sleep(80);
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, () => store.claim({ id, token: randomUUID(), fingerprint: 'f', partition: 'p', lockTtlMs: 10_000 })),
    );
    const acquired = outcomes.filter((o) => o.status === 'acquired');
    expect(acquired).toHaveLength(1);
    expect(fenceOf(acquired[0] as ClaimOutcome)).toBeGreaterThan(fence1);
    expect(outcomes.filter((o) => o.status === 'in_progress')).toHaveLength(49);
  });
});

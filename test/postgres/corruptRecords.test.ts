import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import type { PostgresStore } from '../../src/stores/postgres';
import { freshPostgresStore } from '../helpers/postgresClients';

const future = "clock_timestamp() + interval '1 hour'";
const past = "clock_timestamp() - interval '1 hour'";

/** Rows this store never writes: another schema version, an unknown state, a missing lease end or result. */
const foreignRows: Array<[string, string, string]> = [
  ['schema version 2', `2, 'p', 'tok', '', 1, ${future}, ${future}, NULL`, 'has schema version 2, expected 1'],
  ['unknown state', `1, 'x', 'tok', '', 1, ${future}, ${future}, NULL`, "has unknown state 'x'"],
  ['in progress without a lease end', `1, 'p', 'tok', '', 1, NULL, ${future}, NULL`, 'is in progress without a lease end'],
  ['completed without a result', `1, 'c', 'tok', '', 1, NULL, ${future}, NULL`, 'is completed without a result'],
];

describe('createPostgresStore with rows it did not write', () => {
  let pool: pg.Pool;
  let store: PostgresStore;
  let table: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ pool, store, table, close } = await freshPostgresStore({ sweepIntervalMs: 0 }));
  });
  afterAll(() => close());

  const insert = async (values: string): Promise<string> => {
    const id = randomUUID();
    await pool.query(
      `INSERT INTO ${table} (id, v, state, token, fingerprint, fence, lease_until, expires_at, result) VALUES ($1, ${values})`,
      [id],
    );
    return id;
  };
  const row = async (id: string): Promise<unknown> => (await pool.query(`SELECT * FROM ${table} WHERE id = $1`, [id])).rows[0];
  const corrupt = async (call: () => Promise<unknown>): Promise<string> => {
    const error = await call().then(
      (value) => new Error(`expected RECORD_CORRUPT, got ${JSON.stringify(value)}`),
      (e: unknown) => e,
    );
    expect(isIdempotencyError(error) && error.code, String(error)).toBe('RECORD_CORRUPT');
    return (error as Error).message;
  };

  it.each(foreignRows)('answers RECORD_CORRUPT for a row with %s, to every call, and leaves it untouched', async (_name, values, reason) => {
    const id = await insert(values);
    const before = await row(id);
    const message = await corrupt(() => store.claim({ id, token: randomUUID(), fingerprint: '', partition: 'p', lockTtlMs: 1000 }));
    expect(message).toContain('left untouched');
    // Each message names the row and what is wrong with it.
    const says = `row ${JSON.stringify(id)} of table ${table} ${reason}:`;
    expect(message).toContain(says);
    expect(await corrupt(() => store.renew({ id, token: 'tok', lockTtlMs: 1000 }))).toContain(says);
    expect(await corrupt(() => store.complete({ id, token: 'tok', result: 'r', ttlMs: 1000 }))).toContain(says);
    expect(await corrupt(() => store.release({ id, token: 'tok' }))).toContain(says);
    expect(await corrupt(() => store.recordStep({ id, token: 'tok', name: 'charge', text: 'ch_1', keepMs: 1000 }))).toContain(says);
    expect(await corrupt(() => store.wait({ id, timeoutMs: 1000 }))).toContain(says);
    expect(await row(id)).toEqual(before);
  });

  it('never sweeps a foreign row, even one whose expiry has passed', async () => {
    const id = await insert(`2, 'c', 'tok', '', 1, NULL, ${past}, 'r'`);
    const ours = await insert(`1, 'c', 'tok', '', 1, NULL, ${past}, 'r'`);
    await store.sweep();
    expect(await row(id)).toBeDefined();
    expect(await row(ours)).toBeUndefined();
  });
});

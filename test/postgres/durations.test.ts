import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import type { PostgresStore } from '../../src/stores/postgres';
import { freshPostgresStore } from '../helpers/postgresClients';

// The durations each call passes (lockTtlMs, ttlMs, keepMs) go to SQL as whole milliseconds.
describe('createPostgresStore durations per call', () => {
  let pool: pg.Pool;
  let store: PostgresStore;
  let table: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ pool, store, table, close } = await freshPostgresStore({ sweepIntervalMs: 0 }));
  });
  afterAll(() => close());

  /** The rejection of `call`: INVALID_OPTION naming `name` and the value. */
  const rejects = async (call: () => Promise<unknown>, name: string, value: string): Promise<void> => {
    const error = await call().then(
      (outcome) => new Error(`expected INVALID_OPTION, got ${JSON.stringify(outcome)}`),
      (e: unknown) => e,
    );
    expect(isIdempotencyError(error) && error.code, String(error)).toBe('INVALID_OPTION');
    expect((error as Error).message).toBe(`trpc-idempotency: postgres store: ${name} must be a positive number of ms, got ${value}`);
  };

  it.each([
    [0, '0'],
    [-5, '-5'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    ['100', '100'],
  ])('rejects a lease, TTL or keep of %s, naming which, and writes nothing', async (bad, shown) => {
    const id = randomUUID();
    const ms = bad as number;
    await rejects(() => store.claim({ id, token: 't', fingerprint: '', partition: 'p', lockTtlMs: ms }), 'lockTtlMs', shown);
    await rejects(() => store.renew({ id, token: 't', lockTtlMs: ms }), 'lockTtlMs', shown);
    await rejects(() => store.complete({ id, token: 't', result: 'r', ttlMs: ms }), 'ttlMs', shown);
    await rejects(() => store.recordStep({ id, token: 't', name: 's', text: 'x', keepMs: ms }), 'keepMs', shown);
    const { rows } = await pool.query(`SELECT 1 FROM ${table} WHERE id = $1`, [id]);
    expect(rows).toEqual([]);
  });

  it('takes fractional durations, rounded up to whole milliseconds', async () => {
    const id = randomUUID();
    const token = randomUUID();
    expect((await store.claim({ id, token, fingerprint: '', partition: 'p', lockTtlMs: 10_000.5 })).status).toBe('acquired');
    expect(await store.renew({ id, token, lockTtlMs: 20_000.25 })).toEqual({ status: 'ok' });
    expect(await store.recordStep({ id, token, name: 's', text: 'x', keepMs: 60_000.1 })).toEqual({ status: 'ok' });
    expect(await store.complete({ id, token, result: 'r', ttlMs: 60_000.9 })).toEqual({ status: 'ok' });
    expect(await store.claim({ id, token: randomUUID(), fingerprint: '', partition: 'p', lockTtlMs: 0.5 })).toEqual({
      status: 'completed',
      result: 'r',
    });
  });
});

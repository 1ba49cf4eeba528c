import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import { createPostgresStore } from '../../src/stores/postgres';
import type { PostgresStoreOptions } from '../../src/stores/postgres';
import { thrownBy } from '../server/helpers';

const unused = () => Promise.reject(new Error('unused'));
const pool = { connect: unused, query: unused } as unknown as pg.Pool;
const create = (options: Record<string, unknown>): unknown =>
  thrownBy(() => createPostgresStore({ pool, sweepIntervalMs: 0, ...options } as unknown as PostgresStoreOptions));

// What each option accepts, as its error message states it: a bad value fails at creation (INVALID_OPTION), naming
// the option, its rule and the value it got; the smallest value the rule allows is accepted.
describe('createPostgresStore option rules', () => {
  it.each([
    ['pool', { pool: null }, 'must be a node-postgres (pg 8) Pool'],
    ['pool', { pool: { connect: unused } }, 'must be a node-postgres (pg 8) Pool'],
    ['pool', { pool: { query: unused } }, 'must be a node-postgres (pg 8) Pool'],
    ['operationTimeoutMs', { operationTimeoutMs: 1.5 }, 'must be an integer >= 1, got 1.5'],
    ['leaseGraceMs', { leaseGraceMs: '100' }, 'must be an integer >= 0, got 100'],
    ['releasedTtlMs', { releasedTtlMs: 0 }, 'must be an integer >= 1, got 0'],
    ['waitPollIntervalMs', { waitPollIntervalMs: 9 }, 'must be an integer >= 10, got 9'],
    ['sweepBatchSize', { sweepBatchSize: 2 ** 53 }, 'must be an integer >= 1, got 9007199254740992'],
    ['transactionStatementTimeoutMs', { transactionStatementTimeoutMs: -1 }, 'must be an integer >= 0, got -1'],
    ['transactionIdleTimeoutMs', { transactionIdleTimeoutMs: 0.5 }, 'must be an integer >= 0, got 0.5'],
    [
      'isolationLevel',
      { isolationLevel: 'read uncommitted' },
      "must be one of 'read committed', 'repeatable read', 'serializable', got read uncommitted",
    ],
  ])('rejects a bad %s, saying what it must be and what it got', (name, override, rule) => {
    const error = create(override);
    expect(isIdempotencyError(error) && error.code).toBe('INVALID_OPTION');
    expect((error as Error).message).toContain(`createPostgresStore: option "${name}" ${rule}`);
  });

  it('accepts the smallest value each rule allows', () => {
    expect(
      create({
        operationTimeoutMs: 1,
        leaseGraceMs: 0,
        releasedTtlMs: 1,
        waitPollIntervalMs: 10,
        sweepIntervalMs: 0,
        sweepBatchSize: 1,
        transactionStatementTimeoutMs: 0,
        transactionIdleTimeoutMs: 0,
      }),
    ).toBeUndefined();
  });

  it.each(['read committed', 'repeatable read', 'serializable'])('accepts the isolation level %s', (isolationLevel) => {
    expect(create({ isolationLevel })).toBeUndefined();
  });

  it('takes the default for an option given as undefined', () => {
    expect(
      create({
        table: undefined,
        operationTimeoutMs: undefined,
        leaseGraceMs: undefined,
        waitPollIntervalMs: undefined,
        isolationLevel: undefined,
        transactionIdleTimeoutMs: undefined,
      }),
    ).toBeUndefined();
  });

  it('names the pool option when called without options (untyped callers)', () => {
    const error = thrownBy(() => createPostgresStore(undefined as unknown as PostgresStoreOptions));
    expect(isIdempotencyError(error) && error.code).toBe('INVALID_OPTION');
    expect((error as Error).message).toContain('createPostgresStore: option "pool"');
  });
});

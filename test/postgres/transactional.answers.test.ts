import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { initTRPC, TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore } from '../../src/index';
import type { TransactionalStore } from '../../src/index';
import { isIdempotencyError } from '../../src/errors';
import { deferred, trpcErrorOf } from '../server/helpers';
import type { AppContext } from './fixtures/transactionalBehaviour';
import { backendPid, deferredUniqueSql, appOf, insertItem, counterOf, barrier, retryAfterOf } from './fixtures/transactionalBehaviour';

// What idempotent({ transactional: true }) answers beyond its happy paths (transactional.test.ts), on real
// PostgreSQL: failures of the procedure's transaction, of COMMIT, of the procedure itself.

describe('idempotent({ transactional: true }): answers', () => {
  it('answers UNPROCESSABLE_CONTENT to a key reused with another input, without running', async () => {
    const app = await appOf(insertItem);
    try {
      const key = randomUUID();
      await app.call(key, 'book');
      const error = await trpcErrorOf(app.call(key, 'lamp'));
      expect(error.code).toBe('UNPROCESSABLE_CONTENT');
      expect(app.runs()).toBe(1);
      expect(app.events.filter((e) => e.type === 'mismatch')).toHaveLength(1);
    } finally {
      await app.close();
    }
  });

  it('answers a serialization failure in the procedure (40001) SERVICE_UNAVAILABLE, retry in 100 ms, nothing kept', async () => {
    const app = await appOf(
      async (args) => {
        // Another transaction updates the row after this one's snapshot: this one's update cannot serialize.
        if (args.run === 1) await args.pool.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
        await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
        return insertItem(args);
      },
      { store: { isolationLevel: 'repeatable read' } },
    );
    const counter = await counterOf(app.pool, `${app.table}_counter`);
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toBe(`trpc-idempotency: mutation "order" hit a serialization failure or deadlock in its transaction; nothing was committed, retry the call`);
      expect(retryAfterOf(error)).toBe(100);
      expect(await app.count()).toBe(0);
      expect(await app.count(app.table)).toBe(0);
      expect(await app.call(key)).toEqual({ item: 'x' });
      expect(app.runs()).toBe(2);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${counter}`);
      await app.close();
    }
  });

  it('keeps a serialization failure retryable even when the procedure turns it into a final client error', async () => {
    const app = await appOf(
      async (args) => {
        if (args.run === 1) await args.pool.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
        try {
          await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`);
        } catch (error) {
          throw new TRPCError({ code: 'BAD_REQUEST', message: 'no stock', cause: new Error('reservation failed', { cause: error }) });
        }
        return insertItem(args);
      },
      { store: { isolationLevel: 'repeatable read' } },
    );
    const counter = await counterOf(app.pool, `${app.table}_counter`);
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/serialization failure or deadlock/);
      expect(await app.count(app.table)).toBe(0);
      // The retry runs: the BAD_REQUEST was not stored.
      expect(await app.call(key)).toEqual({ item: 'x' });
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${counter}`);
      await app.close();
    }
  });

  it('answers a deadlock in the procedure (40P01) SERVICE_UNAVAILABLE; the other call commits, the retry runs', async () => {
    const bothLocked = barrier(2);
    const app = await appOf(async (args) => {
      const [mine, theirs] = args.item === 'a' ? [1, 2] : [2, 1];
      await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = $1`, [mine]);
      if (args.run <= 2) await bothLocked();
      await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = $1`, [theirs]);
      return insertItem(args);
    });
    const counter = await counterOf(app.pool, `${app.table}_counter`);
    try {
      const results = await Promise.allSettled([app.call('dl-a', 'a'), app.call('dl-b', 'b')]);
      const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ key: i === 0 ? 'dl-a' : 'dl-b', error: r.reason as TRPCError }] : []));
      expect(failed).toHaveLength(1);
      const [{ key, error }] = failed as [{ key: string; error: TRPCError }];
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/serialization failure or deadlock/);
      expect(retryAfterOf(error)).toBe(100);
      expect(await app.count()).toBe(1);
      expect(await app.call(key, key.slice(-1))).toEqual({ item: key.slice(-1) });
      expect(await app.count()).toBe(2);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${counter}`);
      await app.close();
    }
  });

  it('answers a deadlock at COMMIT (40P01) SERVICE_UNAVAILABLE with nothing of it kept; the retry runs', async () => {
    const bothWrote = barrier(2);
    const app = await appOf(async (args) => {
      await args.tx.client.query(`UPDATE ${counter} SET n = n + 1 WHERE id = $1`, [args.item === 'a' ? 1 : 2]);
      await insertItem(args);
      if (args.run <= 2) await bothWrote();
      return { item: args.item };
    });
    const counter = await counterOf(app.pool, `${app.table}_counter`);
    // At COMMIT, each call's deferred trigger updates the row the other one holds.
    await app.pool.query(`
      CREATE FUNCTION ${counter}_cross() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        UPDATE ${counter} SET n = n + 1 WHERE id = CASE NEW.item WHEN 'a' THEN 2 ELSE 1 END;
        RETURN NULL;
      END $$;
      CREATE CONSTRAINT TRIGGER cross_lock AFTER INSERT ON ${app.items} DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ${counter}_cross();`);
    try {
      const results = await Promise.allSettled([app.call('cd-a', 'a'), app.call('cd-b', 'b')]);
      const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [{ key: i === 0 ? 'cd-a' : 'cd-b', error: r.reason as TRPCError }] : []));
      expect(failed).toHaveLength(1);
      const [{ key, error }] = failed as [{ key: string; error: TRPCError }];
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toMatch(/serialization failure or deadlock/);
      expect(retryAfterOf(error)).toBe(100);
      expect(await app.count()).toBe(1);
      expect(await app.count(app.table)).toBe(1);
      expect(await app.call(key, key.slice(-1))).toEqual({ item: key.slice(-1) });
      expect(await app.count()).toBe(2);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${app.items}, ${counter}; DROP FUNCTION IF EXISTS ${counter}_cross`);
      await app.close();
    }
  });

  it.each([
    ['a numeric code (MongoDB’s duplicate key, 11000)', () => Object.assign(new Error('E11000 duplicate key error'), { code: 11000 })],
    ['a null cause', () => new Error('upstream', { cause: null })],
    [
      'a cause that loops back',
      () => {
        const error = new Error('upstream') as Error & { cause?: unknown };
        error.cause = error;
        return error;
      },
    ],
  ])('answers a procedure error whose cause has %s as the procedure’s own, and frees the key at once', async (_name, cause) => {
    const app = await appOf(async (args) => {
      await insertItem(args);
      throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'upstream failed', cause: cause() });
    });
    try {
      const key = randomUUID();
      for (const run of [1, 2]) {
        const error = await trpcErrorOf(app.call(key));
        expect({ code: error.code, message: error.message }).toEqual({ code: 'INTERNAL_SERVER_ERROR', message: 'upstream failed' });
        expect(app.runs()).toBe(run);
      }
      expect(await app.count()).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('refuses durable steps in the procedure with INVALID_OPTION: the step never runs and nothing is kept', async () => {
    let charged = 0;
    const app = await appOf(async (args) => {
      await insertItem(args);
      return args.tx.step('charge', () => ++charged);
    });
    try {
      const error = await trpcErrorOf(app.call(randomUUID()));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toBe(
        'trpc-idempotency: durable steps are not available in a transactional procedure: a step recorded inside the transaction would ' +
          'roll back with the attempt it has to outlive (see docs/steps.md)',
      );
      expect(isIdempotencyError(error.cause) && error.cause.code).toBe('INVALID_OPTION');
      expect(charged).toBe(0);
      expect(await app.count()).toBe(0);
    } finally {
      await app.close();
    }
  });

  it('does not store an error when shouldStoreError throws: the key is free at once', async () => {
    const app = await appOf(
      async (args) => {
        await insertItem(args);
        throw new TRPCError({ code: 'BAD_REQUEST', message: 'no stock' });
      },
      {
        idempotency: {
          shouldStoreError: () => {
            throw new Error('policy broke');
          },
        },
      },
    );
    try {
      const key = randomUUID();
      expect((await trpcErrorOf(app.call(key))).code).toBe('BAD_REQUEST');
      expect((await trpcErrorOf(app.call(key))).code).toBe('BAD_REQUEST');
      expect(app.runs()).toBe(2);
      expect(await app.count(app.table)).toBe(0);
    } finally {
      await app.close();
    }
  });

  it("gives a waiting duplicate up with CONFLICT once waitTimeoutMs has passed while the key is still held", async () => {
    const hold = deferred();
    const inside = deferred();
    const app = await appOf(
      async (args) => {
        if (args.run === 1) {
          inside.resolve();
          await hold.promise;
        }
        return insertItem(args);
      },
      { idempotency: { onInProgress: 'wait', waitTimeoutMs: 300 } },
    );
    try {
      const key = randomUUID();
      const first = app.call(key);
      await inside.promise;
      const before = app.begins();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('CONFLICT');
      // It claimed on arrival and once more when its wait ended: waiting sends no claims in between.
      expect(app.begins() - before).toBe(2);
      hold.resolve();
      expect(await first).toEqual({ item: 'x' });
      expect(app.runs()).toBe(1);
    } finally {
      hold.resolve();
      await app.close();
    }
  });

  it('answers SERVICE_UNAVAILABLE (retry in 1 s) when the connection is lost while the procedure waits on something else', async () => {
    const app = await appOf(async (args) => {
      if (args.run === 1) {
        const aborted = once(args.tx.signal, 'abort');
        await args.pool.query('SELECT pg_terminate_backend($1)', [await backendPid(args.tx.client)]);
        await aborted;
        throw new Error('the payment service call was abandoned');
      }
      return insertItem(args);
    });
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('SERVICE_UNAVAILABLE');
      expect(error.message).toBe(`trpc-idempotency: the database connection of mutation "order" was lost before COMMIT; nothing was committed, retry the call`);
      expect(retryAfterOf(error)).toBe(1000);
      expect(await app.count(app.table)).toBe(0);
      expect(await app.call(key)).toEqual({ item: 'x' });
    } finally {
      await app.close();
    }
  });

  it("answers the procedure's own error when another connection it used was terminated: its transaction's was not", async () => {
    const app = await appOf(async (args) => {
      await insertItem(args);
      if (args.run === 1) {
        const other = await args.pool.connect();
        other.on('error', () => {});
        try {
          // An audit write on a connection of the procedure's own, outside the transaction, dies with 57P01.
          await other.query('SELECT pg_terminate_backend(pg_backend_pid())');
        } finally {
          other.release(true);
        }
      }
      return { item: args.item };
    });
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toMatch(/terminating connection due to administrator command/);
      expect(error.cause).toMatchObject({ code: '57P01' });
      expect(app.events.filter((e) => e.type === 'released')).toMatchObject([{ code: 'INTERNAL_SERVER_ERROR' }]);
      expect(await app.count()).toBe(0);
      expect(await app.call(key)).toEqual({ item: 'x' });
      expect(await app.count()).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('answers INTERNAL_SERVER_ERROR when its COMMIT fails on a deferred constraint: nothing kept, the key free', async () => {
    const app = await appOf(async (args) => {
      await args.tx.client.query(`INSERT INTO ${checked} (v) VALUES (1)${args.run === 1 ? ', (1)' : ''}`);
      return insertItem(args);
    });
    const checked = `${app.table}_checked`;
    await app.pool.query(deferredUniqueSql(checked));
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toBe(
        'the transaction of mutation "order" was aborted by a failed statement (or its COMMIT failed); nothing was committed',
      );
      expect(error.cause).toMatchObject({ code: '23505' });
      expect(await app.count()).toBe(0);
      expect(await app.call(key)).toEqual({ item: 'x' });
      expect(await app.count(checked)).toBe(1);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${checked}`);
      await app.close();
    }
  });

  it('frees the key and keeps nothing when a middleware inside it forgets `return next()`', async () => {
    const app = await appOf(insertItem);
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key, 'forgetful'));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toMatch(/did you forget to `return next\(\)`/);
      expect(await app.count()).toBe(0);
      expect(app.events.filter((e) => e.type === 'released')).toMatchObject([{ code: 'INTERNAL_SERVER_ERROR' }]);
      await trpcErrorOf(app.call(key, 'forgetful'));
      expect(app.runs()).toBe(2);
    } finally {
      await app.close();
    }
  });

  it('refuses release() on ctx.idempotency.client: the call fails, nothing is committed, the connection stays clean', async () => {
    const app = await appOf(async (args) => {
      await insertItem(args);
      if (args.run === 1) args.tx.client.release();
      return { item: args.item };
    }, { pool: { max: 1 } });
    try {
      const key = randomUUID();
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.message).toMatch(/^trpc-idempotency: ctx\.idempotency\.client belongs to the transaction of this call.*do not call release\(\) on it$/);
      expect(await app.count()).toBe(0);
      expect(app.events.filter((e) => e.type === 'released')).toHaveLength(1);
      // The pool's one connection came back with no transaction open, and the key is free: the retry runs once.
      const { rows } = await app.pool.query<{ open: string | null }>('SELECT txid_current_if_assigned()::text AS open');
      expect(rows).toEqual([{ open: null }]);
      expect(await app.call(key)).toEqual({ item: 'x' });
      expect(await app.count()).toBe(1);
      expect(app.runs()).toBe(2);
    } finally {
      await app.close();
    }
  });

  it('commits the rows and a not-stored marker for a result over maxResultBytes: the retry gets CONFLICT, never a second run', async () => {
    const app = await appOf(async (args) => ({ ...(await insertItem(args)), blob: 'y'.repeat(500) }), { idempotency: { maxResultBytes: 100 } });
    try {
      const key = randomUUID();
      expect(await app.call(key)).toMatchObject({ item: 'x' });
      expect(app.events.filter((e) => e.type === 'not_stored')).toMatchObject([{ reason: 'too_large', limitBytes: 100, path: 'order' }]);
      const error = await trpcErrorOf(app.call(key));
      expect(error.code).toBe('CONFLICT');
      expect(isIdempotencyError(error.cause) && error.cause.code).toBe('NOT_STORED');
      expect(app.runs()).toBe(1);
      expect(await app.count()).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe('idempotent({ transactional: true }) without an onEvent listener (the default)', () => {
  it('answers every outcome as with one: released, not stored, a failed COMMIT, a forgotten next()', async () => {
    const app = await appOf(
      async (args) => {
        if (args.item === 'transient') throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: 'try later' });
        if (args.item === 'deferred') await args.tx.client.query(`INSERT INTO ${checked} (v) VALUES (1), (1)`);
        return { ...(await insertItem(args)), blob: args.item === 'big' ? 'y'.repeat(500) : '' };
      },
      { events: false, idempotency: { maxResultBytes: 100 } },
    );
    const checked = `${app.table}_checked`;
    await app.pool.query(deferredUniqueSql(checked));
    try {
      expect(await app.call(randomUUID(), 'ok')).toEqual({ item: 'ok', blob: '' });
      expect((await trpcErrorOf(app.call(randomUUID(), 'transient'))).message).toBe('try later');
      expect(await app.call(randomUUID(), 'big')).toMatchObject({ item: 'big' });
      expect((await trpcErrorOf(app.call(randomUUID(), 'deferred'))).message).toMatch(/was aborted by a failed statement/);
      expect((await trpcErrorOf(app.call(randomUUID(), 'forgetful'))).message).toMatch(/did you forget to `return next\(\)`/);
      expect(await app.count()).toBe(2);
    } finally {
      await app.pool.query(`DROP TABLE IF EXISTS ${checked}`);
      await app.close();
    }
  });
});

describe('idempotent({ transactional: true }) on a store of your own', () => {
  it('answers a claim outcome outside the contract INTERNAL_SERVER_ERROR (RECORD_CORRUPT) without running or claiming again', async () => {
    const inner = createMemoryStore();
    let begins = 0;
    const store: TransactionalStore = {
      ...inner,
      transactional: {
        begin: async () => {
          begins++;
          return { status: 'paused' } as never;
        },
        wait: (request) => inner.wait(request),
      },
    };
    const t = initTRPC.context<AppContext>().create();
    const { idempotent } = createIdempotency<AppContext>({ store });
    let ran = 0;
    const router = t.router({ order: t.procedure.use(idempotent({ transactional: true })).mutation(() => ++ran) });
    const error = await trpcErrorOf(router.createCaller({ headers: { 'idempotency-key': 'k' } }).order());
    expect(error.code).toBe('INTERNAL_SERVER_ERROR');
    expect(isIdempotencyError(error.cause) && error.cause.code).toBe('RECORD_CORRUPT');
    expect(error.cause).toHaveProperty('message', 'trpc-idempotency: the store returned an unknown claim outcome "paused"');
    expect({ ran, begins }).toEqual({ ran: 0, begins: 1 });
  });
});


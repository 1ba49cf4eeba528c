import { describe, expect, it } from 'vitest';
import { createIdempotency, createMemoryStore } from '../../src/index';
import type { Clock } from '../../src/clock';
import type { ClaimRequest, TransactionalStore } from '../../src/store';
import { partitionOf } from '../../src/server/partition';
import { recordId, scopeText } from '../../src/server/scope';
import { createManualClock } from '../helpers/manualClock';
import type { TestContext } from './helpers';
import { createT, trpcErrorOf } from './helpers';

/** The connection a transaction hands the procedure. */
interface FakeClient {
  connection: string;
}

/**
 * The memory store with the transactional capability, for the middleware's routing only (PostgreSQL's own
 * transaction is tested on a real server in test/postgres): `begin` claims in the memory store and hands out a
 * "transaction" whose commit completes the record there. Records which path each call took.
 */
const transactionalMemoryStore = (clock: Clock) => {
  const inner = createMemoryStore({ clock });
  const client: FakeClient = { connection: 'tx-1' };
  const begun: ClaimRequest[] = [];
  const commits: { result: string; discardWrites: boolean }[] = [];
  const plainClaims: ClaimRequest[] = [];
  const store: TransactionalStore<FakeClient> = {
    claim: (request) => {
      plainClaims.push(request);
      return inner.claim(request);
    },
    renew: (request) => inner.renew(request),
    complete: (request) => inner.complete(request),
    release: (request) => inner.release(request),
    recordStep: (request) => inner.recordStep(request),
    wait: (request) => inner.wait(request),
    transactional: {
      begin: async (request) => {
        begun.push(request);
        const outcome = await inner.claim(request);
        if (outcome.status !== 'acquired') return outcome;
        const { id, token } = request;
        return {
          status: 'acquired',
          fence: outcome.fence,
          takeover: outcome.takeover,
          transaction: {
            client,
            signal: new AbortController().signal,
            commit: async ({ result, ttlMs, discardWrites }) => {
              commits.push({ result, discardWrites });
              await inner.complete({ id, token, result, ttlMs });
              return { status: 'committed' };
            },
            rollback: async () => {
              await inner.release({ id, token });
            },
          },
        };
      },
      wait: (request) => inner.wait(request),
    },
  };
  return { store, client, begun, commits, plainClaims };
};

describe('a transactional procedure', () => {
  const setup = () => {
    const t = createT();
    const clock = createManualClock();
    const fake = transactionalMemoryStore(clock);
    const { idempotent } = createIdempotency<TestContext, TransactionalStore<FakeClient>>({
      store: fake.store,
      clock,
      scope: ({ ctx }) => ctx.user,
    });
    let runs = 0;
    const clients: unknown[] = [];
    const router = t.router({
      pay: t.procedure
        .use(idempotent({ transactional: true }))
        .input((raw: unknown) => raw)
        .mutation(({ ctx }) => {
          clients.push(ctx.idempotency?.client);
          return { paid: ++runs };
        }),
    });
    const call = (input: unknown) => t.createCallerFactory(router)({ user: 'u1', headers: { 'idempotency-key': 'k1' } }).pay(input);
    return { ...fake, call, clients, runs: () => runs };
  };

  it("claims its key in the store's transaction, by the call's record id and scope partition, and commits its result there", async () => {
    const s = setup();
    expect(await s.call({ amount: 5 })).toEqual({ paid: 1 });
    const scoped = scopeText('u1');
    expect(s.begun).toEqual([
      expect.objectContaining({ id: recordId(scoped, 'pay', 'k1'), partition: partitionOf(scoped), fingerprint: expect.stringMatching(/^.+$/) }),
    ]);
    // Its writes go through the transaction's connection, and the result commits with them.
    expect(s.clients).toEqual([s.client]);
    expect(s.commits).toEqual([{ result: expect.any(String), discardWrites: false }]);
    // The lease-based claim is never used: it would run the procedure outside the transaction.
    expect(s.plainClaims).toEqual([]);
    expect(await s.call({ amount: 5 })).toEqual({ paid: 1 });
    expect(s.runs()).toBe(1);
  });

  it('refuses the key with another input, as the lease-based mode does', async () => {
    const s = setup();
    await s.call({ amount: 5 });
    const error = await trpcErrorOf(s.call({ amount: 6 }));
    expect(error.code).toBe('UNPROCESSABLE_CONTENT');
    expect(s.runs()).toBe(1);
  });
});

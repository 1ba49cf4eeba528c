import type { Clock } from '../../src/clock';
import { delayQueue } from '../../src/delayQueue';
import type { IdempotencyEvent } from '../../src/server/events';
import type { Claim } from '../../src/server/claim';
import { renewInterval } from '../../src/server/lease';
import type { IdempotencyStore, LeaseOutcome } from '../../src/store';

/** What one call to renew, complete or release answers: a status, a thrown error, or a reply the test sends later. */
export type Reply = 'ok' | 'lost' | Error | Promise<LeaseOutcome>;

type Operation = 'renew' | 'complete' | 'release';

export interface ScriptedStore {
  store: IdempotencyStore;
  /** Replies still to give, per operation, in order; once one runs dry, every further call answers `fallback`. */
  script: Record<Operation, Reply[]>;
  fallback: Record<Operation, Reply>;
  /** Every call, with the request it carried and when (`clock.now()`) it was made. */
  calls: { operation: Operation; request: Record<string, unknown>; at: number }[];
  callsOf: (operation: Operation) => { request: Record<string, unknown>; at: number }[];
}

/**
 * A store whose lease operations (renew, complete, release) answer what the test scripted, for unit tests of the
 * lease and of storing a result. Claim and wait are not part of those paths and throw.
 */
export const scriptedStore = (clock: Clock): ScriptedStore => {
  const script: Record<Operation, Reply[]> = { renew: [], complete: [], release: [] };
  const fallback: Record<Operation, Reply> = { renew: 'ok', complete: 'ok', release: 'ok' };
  const calls: ScriptedStore['calls'] = [];
  const answer = (operation: Operation, request: object): Promise<LeaseOutcome> => {
    calls.push({ operation, request: { ...request }, at: clock.now() });
    const reply = script[operation].shift() ?? fallback[operation];
    if (reply instanceof Error) return Promise.reject(reply);
    if (typeof reply === 'string') return Promise.resolve({ status: reply });
    return reply;
  };
  const store: IdempotencyStore = {
    claim: () => Promise.reject(new Error('claim is not scripted')),
    wait: () => Promise.reject(new Error('wait is not scripted')),
    recordStep: () => Promise.reject(new Error('recordStep is not scripted')),
    renew: (request) => answer('renew', request),
    complete: (request) => answer('complete', request),
    release: (request) => answer('release', request),
  };
  return { store, script, fallback, calls, callsOf: (operation) => calls.filter((c) => c.operation === operation) };
};

/** A claim on `store` as the middleware builds one (see keyedCall), its events collected in `events`. */
export const claimOn = (
  clock: Clock,
  store: IdempotencyStore,
  { lockTtlMs = 3_000, ttlMs = 60_000, listen = true }: { lockTtlMs?: number; ttlMs?: number; listen?: boolean } = {},
): { claim: Claim; events: IdempotencyEvent[] } => {
  const events: IdempotencyEvent[] = [];
  const claim: Claim = {
    store,
    clock,
    now: () => clock.now(),
    renewals: delayQueue(clock, renewInterval(lockTtlMs)),
    emit: listen ? (event) => void events.push(event) : undefined,
    id: 'key-hash',
    token: 'token-1',
    path: 'orders.create',
    ttlMs,
    lockTtlMs,
  };
  return { claim, events };
};

import type { Cluster, Redis } from 'ioredis';
import { IdempotencyError } from '../errors';
import type { RunScript } from './scripts';
import { keySlot } from './slot';

/**
 * Claim deadlines in Redis time. A claim the store gave up on (no answer within operationTimeoutMs) may still sit
 * in the socket of a stalled Redis, or be resent by ioredis after a reconnect, and run later: it would take a key
 * nobody runs (the key reads in progress for a whole lease), or take it over from a live owner whose lease lapsed
 * during the stall (then that owner's result is refused and a retry runs the procedure a second time). So every
 * claim run carries `notAfterMs`, a Redis time after which the claim script claims nothing (`T`).
 *
 * Redis' clock is learnt from the claim script's own replies, whose last entry is Redis' time: a reply sent at
 * local time `sentAt` and received at `receivedAt` that says Redis time R bounds the offset (Redis - local) to
 * [R - receivedAt, R - sentAt]. The lower end is what is kept, so `notAfterMs = giveUpAt + low - margin` is never
 * later, in Redis time, than the moment the store fails the claim's callers: an estimate that is off makes Redis
 * refuse claims (STORE_UNAVAILABLE, retryable), never run one late. (A Redis clock that steps back breaks this,
 * as it breaks leases: both assume Redis' clock never goes backwards.) Samples cost nothing on the way (one TIME
 * inside the script, in every run that acquires a key or meets one in progress; a run of replays reads no clock
 * and brings no sample); only a node with no recent sample costs a probe first: one claim run that claims
 * nothing (`notAfterMs` 0), at a store's first claim and after a minute without claims that needed the clock.
 *
 * @returns a `RunScript` for the claim script that fills in ARGV[2] (notAfterMs) and strips the time off the reply.
 */
export const createClaimRunner = (client: Redis | Cluster, run: RunScript, timeoutMs: number): RunScript => {
  const estimates = new Map<string, Estimate>();
  const probes = new Map<string, Promise<void>>();
  const clientPrefix = client.options.keyPrefix ?? '';
  const margin = Math.min(MARGIN_MS, timeoutMs / 2);
  // A cluster's nodes have clocks of their own: one estimate per master, as ioredis routes the slot now.
  const nodeOf = client.isCluster
    ? (key: string): string => (client as Cluster).slots[keySlot(clientPrefix + key)]?.[0] ?? ''
    : (): string => '';

  /**
   * One claim run: `notAfter` in ARGV[2]; learns Redis' time from the reply and returns the per-record part. The
   * node is looked up once the reply is in: a cluster client learns its slot map with its first command.
   */
  const runAt = async (keys: readonly string[], args: readonly string[], notAfter: string) => {
    const sent = args.slice();
    sent[1] = notAfter;
    const sentAt = performance.now();
    const reply = await run('claim', keys, sent);
    if (Array.isArray(reply) && reply.length === keys.length + 1) {
      // '' when the run never read the clock (a run of replays): nothing to learn.
      const time: unknown = reply.pop();
      if (time !== '') learn(estimates, nodeOf(keys[0] ?? ''), { redisMs: Number(time) / 1000, sentAt });
    }
    return reply;
  };

  const probe = (node: string, keys: readonly string[], args: readonly string[]): Promise<void> => {
    let pending = probes.get(node);
    if (!pending) {
      pending = runAt(keys, args, '0').then(
        () => void probes.delete(node),
        (error: unknown) => {
          probes.delete(node);
          throw error;
        },
      );
      probes.set(node, pending);
    }
    return pending;
  };

  if (!client.isCluster) {
    // Learn the clock before the first claims need it, so a burst of them at startup does not share one probe
    // slowed by that burst (a loose bound: claims refused for no reason). Errors are left to the claims' probe.
    const early = (): void => void probe('', [], [PROBE_GRACE, '0']).catch(() => {});
    if (client.status === 'ready') early();
    else client.once('ready', early);
  }

  return async (_script, keys, args) => {
    const giveUpAt = performance.now() + timeoutMs;
    const key = keys[0] ?? '';
    let estimate = freshEstimate(estimates, nodeOf(key));
    // Twice at most: a cluster client without its slot map yet shares one probe among all nodes at first.
    for (let tries = 0; !estimate && tries < 2; tries++) {
      await probe(nodeOf(key), keys, args);
      estimate = freshEstimate(estimates, nodeOf(key));
    }
    // No time left for Redis to run it in (a slow probe): don't send a claim that could only be refused.
    if (!estimate || performance.now() >= giveUpAt - margin) {
      throw new IdempotencyError('STORE_UNAVAILABLE', `redis claim not sent: Redis' clock could not be read in time`, {
        retryAfterMs: timeoutMs,
      });
    }
    return runAt(keys, args, Math.floor(giveUpAt + estimate.low - margin).toFixed(0));
  };
};

// ---- internal helpers ----

/**
 * Slack between the Redis deadline and the moment the store gives up: covers a timer that fires a little early
 * and how far the two clocks can drift apart while an estimate is in use (100 ppm over MAX_AGE_MS is 6 ms).
 */
const MARGIN_MS = 20;

/** graceMs of a probe: it claims nothing, so it is never read. */
const PROBE_GRACE = '0';

/**
 * An estimate is used this long after its sample. Any claim reply renews one older than half of it, so steady
 * traffic never waits for a probe; after a minute without claims the next claim probes first.
 */
const MAX_AGE_MS = 60_000;

/** A lower bound on Redis time minus `performance.now()`, in ms, and when it was learnt (local). */
interface Estimate {
  low: number;
  at: number;
}

const freshEstimate = (estimates: Map<string, Estimate>, node: string): Estimate | undefined => {
  const estimate = estimates.get(node);
  return estimate && performance.now() - estimate.at < MAX_AGE_MS ? estimate : undefined;
};

/**
 * Keeps the tightest lower bound: a sample replaces the estimate when its bound is higher, when it proves the
 * estimate wrong (its upper bound is lower: Redis' clock moved back against ours), or when the estimate is past
 * half its age (drift: a bound learnt long ago may no longer hold).
 */
const learn = (estimates: Map<string, Estimate>, node: string, { redisMs, sentAt }: { redisMs: number; sentAt: number }): void => {
  if (!Number.isFinite(redisMs)) return;
  const receivedAt = performance.now();
  const low = redisMs - receivedAt;
  const current = estimates.get(node);
  if (!current || low >= current.low || redisMs - sentAt < current.low || receivedAt - current.at >= MAX_AGE_MS / 2) {
    estimates.set(node, { low, at: receivedAt });
  }
};

import type { TRPCMiddlewareFunction } from '@trpc/server';
import { TRPCError } from '@trpc/server';
import type { Redis } from 'ioredis';

/**
 * The seed-style baseline: the idempotency middleware most teams hand-roll, written as well as that design
 * allows, so the benchmark compares against a fair opponent rather than a strawman.
 *
 *   fresh call:  GET key -> SET key "processing" NX PX 30000 -> run -> SET key JSON.stringify(result) PX ttl
 *                (3 round trips; a failed run DELetes the key so a retry can run again)
 *   replay:      GET key -> JSON.parse (1 round trip)
 *   duplicate while the first call runs: CONFLICT
 *
 * What it gets wrong (and trpc-idempotency does not):
 * - Not atomic as a whole: GET and SET NX are two round trips, and the lock is a bare string, so a request can
 *   read "processing", or nothing, in between and decide on stale state.
 * - No lease renewal and no fencing: a procedure that runs past 30 s loses its lock silently, a second request
 *   runs it again, and the late first owner still overwrites the result.
 * - JSON only: a replayed `Date` comes back as a string (also Map, Set, BigInt, undefined), so a retry sees a
 *   different value than the first call.
 * - No fingerprint: the same key with a different input replays the first result.
 * - Keys are not scoped per user, and a failing SET after the run leaves "processing" until the lock expires.
 *
 * For the memory-store rows the same algorithm runs on a Map (`createMapKv`).
 */

/** The three string commands the seed middleware needs, on Redis or on a Map. */
export interface BaselineKv {
  get(key: string): Promise<string | null>;
  /** `SET key value NX PX ms`: true when it was set. */
  setNx(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** `SET key value PX ms`. */
  set(key: string, value: string, ttlMs: number): Promise<void>;
  del(key: string): Promise<void>;
}

/** The seed on ioredis: the same client our store uses. */
export const createRedisKv = (redis: Redis): BaselineKv => ({
  get: (key) => redis.get(key),
  setNx: async (key, value, ttlMs) => (await redis.set(key, value, 'PX', ttlMs, 'NX')) === 'OK',
  set: async (key, value, ttlMs) => {
    await redis.set(key, value, 'PX', ttlMs);
  },
  del: async (key) => {
    await redis.del(key);
  },
});

/**
 * The seed on a Map, with expiry checked on read (as SET PX would). Bounded like our memory store (10000
 * entries by default) so the bench's heap stays flat; the seed simply drops the oldest key when full.
 */
export const createMapKv = (maxEntries = 10_000): BaselineKv => {
  const entries = new Map<string, { value: string; expiresAt: number }>();
  const put = (key: string, value: string, ttlMs: number): void => {
    entries.delete(key);
    if (entries.size >= maxEntries) entries.delete(entries.keys().next().value as string);
    entries.set(key, { value, expiresAt: Date.now() + ttlMs });
  };
  const read = (key: string): string | null => {
    const entry = entries.get(key);
    if (!entry) return null;
    if (entry.expiresAt > Date.now()) return entry.value;
    entries.delete(key);
    return null;
  };
  return {
    get: async (key) => read(key),
    setNx: async (key, value, ttlMs) => {
      if (read(key) !== null) return false;
      put(key, value, ttlMs);
      return true;
    },
    set: async (key, value, ttlMs) => {
      put(key, value, ttlMs);
    },
    del: async (key) => {
      entries.delete(key);
    },
  };
};

export interface BaselineOptions<TContext> {
  kv: BaselineKv;
  /** Where the key comes from: a header, or ctx in-process. */
  keyOf: (ctx: TContext) => string | undefined;
  ttlMs?: number;
  lockTtlMs?: number;
}

const PROCESSING = 'processing';
// tRPC checks the marker's type only (see trpc-v11-notes section 1).
const MARKER = 'middlewareMarker' as any;

export const baselineIdempotency = <TContext>(
  options: BaselineOptions<TContext>,
): TRPCMiddlewareFunction<TContext, any, object, object, any> => {
  const { kv, keyOf, ttlMs = 86_400_000, lockTtlMs = 30_000 } = options;
  const conflict = (): TRPCError => new TRPCError({ code: 'CONFLICT', message: 'a request with this idempotency key is in progress' });

  return async (opts) => {
    if (opts.type !== 'mutation') return opts.next();
    const key = keyOf(opts.ctx as TContext);
    if (!key) return opts.next();
    const id = `seed:${opts.path}:${key}`;

    const existing = await kv.get(id);
    if (existing === PROCESSING) throw conflict();
    if (existing !== null) return { ok: true as const, data: JSON.parse(existing) as unknown, marker: MARKER };

    if (!(await kv.setNx(id, PROCESSING, lockTtlMs))) throw conflict();
    const result = await opts.next();
    if (result.ok) await kv.set(id, JSON.stringify(result.data ?? null), ttlMs);
    else await kv.del(id);
    return result;
  };
};

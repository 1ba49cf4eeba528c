import type { Cluster, Redis } from 'ioredis';
import { claimLua, completeLua, peekLua, releaseLua, renewLua, scriptsVersion } from './luaScripts';

/** Replies of the scripts, as documented in the header of each `lua/*.lua`. */
export type ScriptReply = string[];

/** Typed wrappers around the store's Lua scripts; argument order matches each script's ARGV. */
export interface StoreScripts {
  claim(key: string, args: [token: string, fingerprint: string, lockTtlMs: string, graceMs: string]): Promise<unknown>;
  renew(key: string, args: [token: string, lockTtlMs: string, graceMs: string]): Promise<unknown>;
  complete(key: string, args: [token: string, result: string, ttlMs: string]): Promise<unknown>;
  release(key: string, args: [token: string, releasedTtlMs: string]): Promise<unknown>;
  peek(key: string, args: []): Promise<unknown>;
}

const sources = {
  claim: claimLua,
  renew: renewLua,
  complete: completeLua,
  release: releaseLua,
  peek: peekLua,
} as const satisfies Record<keyof StoreScripts, string>;

/** Command name on the client, e.g. `trpcIdempotency_0_1_0_claim`: two versions of the package never collide. */
export const commandName = (script: keyof StoreScripts): string =>
  `trpcIdempotency_${scriptsVersion.replace(/\W/g, '_')}_${script}`;

/**
 * Registers each script once per client with ioredis `defineCommand`, which runs it by SHA (EVALSHA) and
 * falls back to EVAL when Redis answers NOSCRIPT (script cache flushed, failover, restart). ioredis applies
 * the client's `keyPrefix` to KEYS and routes by KEYS on a Cluster.
 */
export const registerScripts = (client: Redis | Cluster): StoreScripts => {
  const methods = client as unknown as Record<string, unknown>;
  const wrap = (script: keyof StoreScripts) => {
    const name = commandName(script);
    if (typeof methods[name] !== 'function') client.defineCommand(name, { lua: sources[script], numberOfKeys: 1 });
    const method = methods[name] as (...args: string[]) => Promise<unknown>;
    return (key: string, args: string[]): Promise<unknown> => method.call(client, key, ...args);
  };
  return {
    claim: wrap('claim'),
    renew: wrap('renew'),
    complete: wrap('complete'),
    release: wrap('release'),
    peek: wrap('peek'),
  };
};

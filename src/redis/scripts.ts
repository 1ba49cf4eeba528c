import type { Cluster, Redis } from 'ioredis';
import { claimLua, completeLua, peekLua, releaseLua, renewLua, stepLua } from './luaScripts';
import { scriptsVersion } from './luaScripts';

/** The store's Lua scripts; each `lua/<name>.lua` documents its KEYS, ARGV and output. */
export type ScriptName = 'claim' | 'renew' | 'complete' | 'release' | 'step' | 'peek';

/** Scripts that take a batch of records: one KEYS entry per record, per-record ARGV after the shared ones. */
export type BatchScriptName = Exclude<ScriptName, 'peek'>;

/**
 * Runs a store script by name: `keys` are the record keys as the store spells them (the client adds its own
 * `keyPrefix`), `args` the script's ARGV in the order its header lists them.
 */
export type RunScript = (script: ScriptName, keys: readonly string[], args: readonly string[]) => Promise<unknown>;

const sources = {
  claim: claimLua,
  renew: renewLua,
  complete: completeLua,
  release: releaseLua,
  step: stepLua,
  peek: peekLua,
} as const satisfies Record<ScriptName, string>;

/** Command name on the client, e.g. `trpcIdempotency_0_1_0_claim`: two versions of the package never collide. */
export const commandName = (script: ScriptName): string =>
  `trpcIdempotency_${scriptsVersion.replace(/\W/g, '_')}_${script}`;

/**
 * Registers each script once per client with ioredis `defineCommand`, which runs it by SHA (EVALSHA) and
 * falls back to EVAL when Redis answers NOSCRIPT (script cache flushed, failover, restart). The number of
 * keys is given per call (batches vary in size); ioredis applies the client's `keyPrefix` to KEYS and routes
 * by KEYS on a Cluster (all KEYS of one call must share a slot).
 */
export const registerScripts = (client: Redis | Cluster): RunScript => {
  const methods = client as unknown as Record<string, unknown>;
  const bound = {} as Record<ScriptName, (...args: Array<number | readonly string[]>) => Promise<unknown>>;
  for (const script of Object.keys(sources) as ScriptName[]) {
    const name = commandName(script);
    if (typeof methods[name] !== 'function') client.defineCommand(name, { lua: sources[script] });
    bound[script] = (methods[name] as (...args: Array<number | readonly string[]>) => Promise<unknown>).bind(client);
  }
  // ioredis flattens array arguments: no spread of a batch's keys and args.
  return (script, keys, args) => bound[script](keys.length, keys, args);
};

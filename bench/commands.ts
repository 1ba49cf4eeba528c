import type { Redis } from 'ioredis';
import type { BenchRedis } from './redisServer';
import { commandStats, redisCpuUs, statsDelta } from './redisServer';

/** Redis commands per call in one window, from `INFO commandstats` on the bench's own redis-server. */
export interface CommandCount {
  /** Commands the clients sent (EVALSHA, GET, SET, ...), per call. */
  perCall: number;
  /** Everything Redis executed, Lua-internal commands (HMGET, HSET, TIME, ...) included, per call. */
  totalPerCall: number;
  /** redis-server CPU time (user + sys, from INFO cpu) per call, in µs. */
  redisCpuUs: number;
  /** Raw deltas by command name. */
  byCommand: Record<string, number>;
}

export interface CommandMeter {
  start(): Promise<void>;
  stop(calls: number): Promise<CommandCount>;
}

/**
 * INFO commandstats counts the commands a Lua script runs as well as the EVALSHA that ran it, with nothing to
 * tell them apart. So the meter also records which command names the bench's client sent (a counter on
 * `sendCommand`): those names are the round trips; the rest of the delta is what ran inside scripts.
 */
export const createCommandMeter = (server: BenchRedis, client: Redis): CommandMeter => {
  const sent = new Set<string>();
  const target = client as unknown as { sendCommand(command: { name: string }): unknown };
  const original = target.sendCommand.bind(client);
  target.sendCommand = (command) => {
    sent.add(command.name.toLowerCase());
    return original(command);
  };
  let before = new Map<string, number>();
  let cpuBefore = 0;
  return {
    start: async () => {
      sent.clear();
      before = await commandStats(server.admin);
      cpuBefore = await redisCpuUs(server.admin);
    },
    stop: async (calls) => {
      const cpu = (await redisCpuUs(server.admin)) - cpuBefore;
      const delta = statsDelta(before, await commandStats(server.admin));
      let total = 0;
      let fromClient = 0;
      for (const [name, count] of delta) {
        total += count;
        if (sent.has(name)) fromClient += count;
      }
      const per = (n: number): number => (calls > 0 ? n / calls : 0);
      return { perCall: per(fromClient), totalPerCall: per(total), redisCpuUs: per(cpu), byCommand: Object.fromEntries(delta) };
    },
  };
};

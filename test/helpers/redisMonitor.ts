import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { IdempotencyStore } from '../../src/store';

export interface MonitoredCommand {
  /** Lower-case command name, e.g. `evalsha`. */
  name: string;
  args: string[];
  /** `host:port` of the sending client, or `lua` for commands run inside a script. */
  source: string;
}

export interface RedisMonitor {
  /**
   * Runs `action` and returns every command Redis received meanwhile from clients (not from inside Lua), minus
   * connection handshakes (HELLO, CLIENT, INFO, SELECT) and the monitor's own markers.
   */
  record(action: () => Promise<unknown>): Promise<MonitoredCommand[]>;
  stop(): Promise<void>;
}

/** Counts commands the way Redis sees them: a MONITOR connection, flushed with an ECHO marker. */
export const startMonitor = async (url: string): Promise<RedisMonitor> => {
  const monitorClient = new Redis(url);
  const markerClient = new Redis(url);
  const monitor = await monitorClient.monitor();
  let seen: MonitoredCommand[] = [];
  const markers = new Map<string, () => void>();
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    const [name = '', ...rest] = args;
    if (name.toLowerCase() === 'echo' && rest[0] && markers.has(rest[0])) {
      markers.get(rest[0])?.();
      return;
    }
    seen.push({ name: name.toLowerCase(), args: rest, source });
  });
  const flush = async (): Promise<void> => {
    const marker = `monitor-marker-${randomUUID()}`;
    const reached = new Promise<void>((resolve) => markers.set(marker, resolve));
    await markerClient.echo(marker);
    await reached;
    markers.delete(marker);
  };
  await flush();
  return {
    record: async (action) => {
      await flush();
      seen = [];
      await action();
      await flush();
      return seen.filter((command) => command.source !== 'lua' && !HANDSHAKE.has(command.name));
    },
    stop: async () => {
      monitor.disconnect();
      monitorClient.disconnect();
      await markerClient.quit();
    },
  };
};

const HANDSHAKE = new Set(['hello', 'client', 'info', 'select', 'auth']);

/**
 * ioredis sends each script as EVAL the first time on a connection, then EVALSHA: run every script once so a
 * recorded window sees only EVALSHA.
 */
export const warmUpScripts = async (store: IdempotencyStore): Promise<void> => {
  const id = randomUUID();
  await store.claim({ id, token: 'w', fingerprint: 'f', lockTtlMs: 10_000 });
  await store.renew({ id, token: 'w', lockTtlMs: 10_000 });
  await store.complete({ id, token: 'w', result: 'r', ttlMs: 60_000 });
  await store.release({ id, token: 'w' });
};

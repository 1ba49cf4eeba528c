import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { Redis } from 'ioredis';
import { createRedisStore } from '../../src/redis';
import type { RedisStore } from '../../src/redis';
import type { IdempotencyStore } from '../../src/store';
import { connectRedis, randomPrefix, redisTarget } from './redisClients';

export interface MonitoredCommand {
  /** Lower-case command name, e.g. `evalsha`. */
  name: string;
  args: string[];
  /** `host:port` of the sending client, or `lua` for commands run inside a script. */
  source: string;
}

export interface RedisMonitor {
  /**
   * Runs `action` and returns every command Redis received meanwhile from clients (not from inside Lua, unless
   * `lua: true`: then the commands scripts ran too, `source` 'lua'), minus connection handshakes (HELLO, CLIENT,
   * INFO, SELECT) and the monitor's own markers.
   */
  record(action: () => Promise<unknown>, options?: { lua?: boolean }): Promise<MonitoredCommand[]>;
  stop(): Promise<void>;
}

/**
 * Counts commands the way Redis sees them: a MONITOR connection, flushed with an ECHO marker.
 *
 * The MONITOR connection is a raw socket, not ioredis's `monitor()`: ioredis enters monitoring mode in a promise
 * callback after MONITOR's `OK`, so a monitor line that arrives in the same TCP read as that `OK` finds an empty
 * command queue and fails with "Command queue state error" (seen once in CI).
 */
export const startMonitor = async (url: string): Promise<RedisMonitor> => {
  const markerClient = new Redis(url);
  let seen: MonitoredCommand[] = [];
  const markers = new Map<string, () => void>();
  const socket = await openMonitor(url, (line) => {
    const command = parseMonitorLine(line);
    if (!command) return;
    if (command.name === 'echo' && command.args[0] && markers.has(command.args[0])) {
      markers.get(command.args[0])?.();
      return;
    }
    seen.push(command);
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
    record: async (action, options) => {
      await flush();
      seen = [];
      await action();
      await flush();
      return seen.filter((command) => (options?.lua || command.source !== 'lua') && !HANDSHAKE.has(command.name));
    },
    stop: async () => {
      socket.destroy();
      await markerClient.quit();
    },
  };
};

const HANDSHAKE = new Set(['hello', 'client', 'info', 'select', 'auth']);

const encodeCommand = (args: string[]): string =>
  `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;

/**
 * Opens a socket (TLS for `rediss://`), authenticates when the URL says so, sends MONITOR and resolves once Redis
 * answered `+OK`.
 */
const openMonitor = (url: string, onLine: (line: string) => void): Promise<Socket> => {
  const target = new URL(url);
  // URL keeps an IPv6 host in brackets; net.connect wants it bare.
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = Number(target.port || 6379);
  const tls = target.protocol === 'rediss:';
  const socket = tls ? connectTls({ host, port, servername: host }) : connect({ host, port });
  // Latin-1 keeps one character per byte, so a reply split inside a UTF-8 sequence still parses; arguments are
  // decoded from their bytes by parseMonitorLine.
  socket.setEncoding('latin1');
  const commands: string[][] = [];
  if (target.password) {
    const user = decodeURIComponent(target.username);
    const password = decodeURIComponent(target.password);
    commands.push(user ? ['AUTH', user, password] : ['AUTH', password]);
  }
  commands.push(['MONITOR']);
  let pendingOks = commands.length;
  let buffered = '';
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('MONITOR connection closed before Redis answered')));
    socket.on(tls ? 'secureConnect' : 'connect', () => socket.write(commands.map(encodeCommand).join('')));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let end = buffered.indexOf('\r\n');
      while (end !== -1) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        end = buffered.indexOf('\r\n');
        if (line.startsWith('-')) {
          reject(new Error(`MONITOR connection refused: ${line.slice(1)}`));
          socket.destroy();
          return;
        }
        if (pendingOks > 0 && line === '+OK') {
          pendingOks -= 1;
          if (pendingOks === 0) resolve(socket);
          continue;
        }
        if (line.startsWith('+')) onLine(line.slice(1));
      }
    });
  });
};

const ESCAPES: Record<string, number> = { n: 0x0a, r: 0x0d, t: 0x09, a: 0x07, b: 0x08, '"': 0x22, '\\': 0x5c };

/**
 * Parses `1700000000.123456 [0 127.0.0.1:5000] "evalsha" "abc" "1"` (arguments quoted as Redis's sdscatrepr does:
 * printable ASCII as is, other bytes as `\xHH`, so a UTF-8 argument is read back byte by byte and decoded once).
 */
export const parseMonitorLine = (line: string): MonitoredCommand | undefined => {
  const open = line.indexOf('[');
  const close = line.indexOf(']', open);
  if (open === -1 || close === -1) return undefined;
  const source = line.slice(open + 1, close).split(' ')[1] ?? '';
  const args: string[] = [];
  let i = close + 1;
  while (i < line.length) {
    const quote = line.indexOf('"', i);
    if (quote === -1) break;
    const bytes: number[] = [];
    i = quote + 1;
    while (i < line.length && line[i] !== '"') {
      if (line[i] === '\\') {
        const next = line[i + 1] ?? '';
        if (next === 'x') {
          bytes.push(Number.parseInt(line.slice(i + 2, i + 4), 16));
          i += 4;
        } else {
          bytes.push(ESCAPES[next] ?? next.charCodeAt(0));
          i += 2;
        }
      } else {
        bytes.push(line.charCodeAt(i));
        i += 1;
      }
    }
    args.push(Buffer.from(bytes).toString('utf8'));
    i += 1;
  }
  const [name = '', ...rest] = args;
  return { name: name.toLowerCase(), args: rest, source };
};

/**
 * ioredis sends each script as EVAL the first time on a connection, then EVALSHA: run every script once so a
 * recorded window sees only EVALSHA.
 */
export const warmUpScripts = async (store: IdempotencyStore): Promise<void> => {
  const id = randomUUID();
  await store.claim({ id, partition: 'p', token: 'w', fingerprint: 'f', lockTtlMs: 10_000 });
  await store.renew({ id, token: 'w', lockTtlMs: 10_000 });
  await store.complete({ id, token: 'w', result: 'r', ttlMs: 60_000 });
  await store.release({ id, token: 'w' });
};

export interface MonitoredStore {
  redis: Redis;
  store: RedisStore;
  monitor: RedisMonitor;
  /** Closes the store, the monitor and the client. */
  close(): Promise<void>;
}

/** A Redis store on a new client of the shared node, its scripts warmed up, and a monitor of the node. */
export const monitoredStore = async (prefix: string = randomPrefix()): Promise<MonitoredStore> => {
  const redis = connectRedis();
  const store = createRedisStore({ redis, prefix });
  const monitor = await startMonitor(redisTarget().url);
  await warmUpScripts(store);
  return {
    redis,
    store,
    monitor,
    close: async () => {
      await store.close();
      await monitor.stop();
      await redis.quit();
    },
  };
};

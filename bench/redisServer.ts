import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** The bench's own redis-server: a free port, no persistence. Never the Redis on 6379. */
export interface BenchRedis {
  port: number;
  version: string;
  /** A client for INFO/CONFIG only, so stats reads never queue behind the load. */
  admin: Redis;
  stop(): Promise<void>;
}

export const startBenchRedis = async (): Promise<BenchRedis> => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'trpc-idem-bench-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'];
  const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  const failed = new Promise<never>((_resolve, reject) => {
    child.once('error', (error) => reject(new Error(`bench: cannot start redis-server (${error.message})`)));
    child.once('exit', (code) => reject(new Error(`bench: redis-server exited with ${String(code)}`)));
  });
  failed.catch(() => undefined);
  await waitForPort(port, failed);
  const admin = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
  admin.on('error', () => undefined); // shows up as a failed INFO instead
  await admin.ping();
  const server = await admin.info('server');
  const version = /redis_version:(\S+)/.exec(server)?.[1] ?? 'unknown';
  return {
    port,
    version,
    admin,
    stop: async () => {
      admin.disconnect();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

/** Per-command call counts from `INFO commandstats`. */
export const commandStats = async (admin: Redis): Promise<Map<string, number>> => {
  const text = await admin.info('commandstats');
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) counts.set(match[1] as string, Number(match[2]));
  return counts;
};

/** redis-server's CPU time so far (user + sys, main thread and children), in µs. */
export const redisCpuUs = async (admin: Redis): Promise<number> => {
  const text = await admin.info('cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? 0);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
};

/** `after - before`, without the bench's own INFO/CONFIG traffic. */
export const statsDelta = (before: Map<string, number>, after: Map<string, number>): Map<string, number> => {
  const delta = new Map<string, number>();
  for (const [name, calls] of after) {
    if (name === 'info' || name.startsWith('config')) continue;
    const d = calls - (before.get(name) ?? 0);
    if (d > 0) delta.set(name, d);
  }
  return delta;
};

// ---- internal helpers ----

const waitForPort = async (port: number, failed: Promise<never>): Promise<void> => {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const open = await Promise.race([
      new Promise<boolean>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
      failed,
    ]);
    if (open) return;
    if (Date.now() > deadline) throw new Error(`bench: redis-server did not open port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
};

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port === 6379 || port === 0 ? reject(new Error('bench: no free port')) : resolve(port)));
    });
  });

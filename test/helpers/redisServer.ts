import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A `redis-server` process owned by one test file (or by the global setup): stop, stall and restart it. */
export interface RedisServer {
  host: string;
  port: number;
  url: string;
  /** Stops the process (SIGKILL: no save, no graceful close) and waits for it to exit. */
  kill(): Promise<void>;
  /** SIGSTOP: the socket stays open, nothing answers. */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
  /** Starts a fresh, empty process on the same port (stopping the current one first, if it still runs). */
  restart(): Promise<void>;
  /** Kills the process and removes its directory. */
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  /** Extra `redis-server` arguments, e.g. `['--cluster-enabled', 'yes']`. */
  args?: string[];
  /** Also keep `port + 10000` free (the cluster bus port). */
  clusterBus?: boolean;
}

/** Whether a `redis-server` binary is on the PATH. */
export const hasRedisServer = (): boolean => spawnSync('redis-server', ['--version']).status === 0;

/** Spawns `redis-server` on a free port in a temp dir, without persistence, and waits until it answers PING. */
export const startRedisServer = async (options: RedisServerOptions = {}): Promise<RedisServer> => {
  // Another test file may grab the same free port between our check and redis-server's bind: then our process
  // exits (or someone else's answers) and we try another port.
  for (let attempt = 0; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (!(error instanceof PortTakenError) || attempt >= 5) throw error;
    }
  }
};

const startOnce = async (options: RedisServerOptions): Promise<RedisServer> => {
  const port = await findFreePort(options.clusterBus ?? false);
  const dir = mkdtempSync(join(tmpdir(), `trpc-idem-redis-${port}-`));
  const host = '127.0.0.1';
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no', '--dir', dir];
    child = spawn('redis-server', [...args, '--daemonize', 'no', ...(options.args ?? [])], { stdio: 'ignore' });
    await waitForOwnServer(host, port, child);
  };
  const kill = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGCONT');
    running.kill('SIGKILL');
    await exited;
  };

  try {
    await launch();
  } catch (error) {
    await kill();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    kill,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    restart: async () => {
      await kill(); // never leave the previous process running unreferenced
      await launch();
    },
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

/** A free TCP port on 127.0.0.1 (and `port + 10000` too when a cluster bus needs it). */
export const findFreePort = async (clusterBus: boolean): Promise<number> => {
  for (let attempt = 0; attempt < 200; attempt++) {
    // Below the Linux ephemeral range (32768+), where client sockets could hold or self-connect to the port.
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (port === 6379) continue;
    if ((await isFree(port)) && (!clusterBus || (await isFree(port + 10_000)))) return port;
  }
  throw new Error('no free port found for redis-server');
};

// ---- internal helpers ----

const isFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });

class PortTakenError extends Error {}

/** The process id of the redis-server answering on host:port (INFO server), or undefined when none answers. */
const serverPid = (host: string, port: number): Promise<number | undefined> =>
  new Promise((resolve) => {
    const socket = createConnection({ host, port });
    let reply = '';
    const done = (pid: number | undefined): void => {
      socket.destroy();
      resolve(pid);
    };
    socket.setTimeout(500, () => done(undefined));
    socket.once('error', () => done(undefined));
    socket.once('connect', () => socket.write('INFO server\r\n'));
    socket.on('data', (data) => {
      reply += data.toString();
      const match = /process_id:(\d+)/.exec(reply);
      if (match) done(Number(match[1]));
      else if (reply.startsWith('-')) done(undefined);
    });
  });

/** Waits until the redis-server we spawned (not another one on the same port) answers. */
const waitForOwnServer = async (host: string, port: number, child: ChildProcess): Promise<void> => {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new PortTakenError(`redis-server on port ${port} exited with code ${child.exitCode}`);
    const pid = await serverPid(host, port);
    if (pid === child.pid) return;
    if (pid !== undefined) throw new PortTakenError(`port ${port} is served by another redis-server (pid ${pid})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`redis-server on port ${port} did not answer within 10 s`);
};

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { findFreePort } from './redisServer';

/** A PostgreSQL server owned by one test file (or by the global setup): stop, stall and start it again. */
export interface PostgresServer {
  host: string;
  port: number;
  /** `postgres://postgres@host:port/postgres` (trust authentication). */
  url: string;
  /** Immediate shutdown (SIGQUIT: no checkpoint, every backend gone at once), waiting for the exit. */
  kill(): Promise<void>;
  /** SIGSTOP to the server and every backend: sockets stay open, nothing answers. */
  pause(): void;
  /** SIGCONT after `pause`. */
  resume(): void;
  /** Starts the server again on the same port and data (stopping the current one first, if it still runs). */
  restart(): Promise<void>;
  /** Kills the server and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Where `initdb` and `postgres` live, or undefined: `pg_config --bindir` (Debian keeps them off the PATH),
 * else the PATH.
 */
export const postgresBinDir = (): string | undefined => {
  const config = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  const fromConfig = config.status === 0 ? config.stdout.trim() : '';
  if (fromConfig && existsSync(join(fromConfig, 'initdb')) && existsSync(join(fromConfig, 'postgres'))) return fromConfig;
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  const initdb = which.status === 0 ? which.stdout.trim() : '';
  return initdb ? join(initdb, '..') : undefined;
};

/**
 * Whether the tests can spawn a private server: the binaries exist and, under root (which `initdb` refuses), a
 * `postgres` user exists to run them as.
 */
export const canSpawnPostgres = (): boolean => postgresBinDir() !== undefined && runAs() !== null;

export interface PostgresServerOptions {
  /** Extra `postgres` settings, e.g. `{ shared_preload_libraries: 'pg_stat_statements' }`. */
  settings?: Record<string, string>;
}

/** `initdb` in a temp dir, then `postgres` on a free port of 127.0.0.1; waits until it accepts connections. */
export const startPostgresServer = async (options: PostgresServerOptions = {}): Promise<PostgresServer> => {
  const bin = postgresBinDir();
  const user = runAs();
  if (!bin || user === null) throw new Error('cannot spawn PostgreSQL: no initdb/postgres (pg_config --bindir), or root without a postgres user');
  const dir = mkdtempSync(join(tmpdir(), 'trpc-idem-pg-'));
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const init = spawnSync(
    join(bin, 'initdb'),
    ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'],
    { encoding: 'utf8', ...(user ?? {}) },
  );
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  }
  const host = '127.0.0.1';
  let port = 0;
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    const args = ['-D', data, '-p', String(port), '-k', dir, '-c', `listen_addresses=${host}`, '-c', 'fsync=off'];
    // fsync off is safe for tests that crash the server (the OS keeps the WAL); synchronous_commit off is not.
    args.push('-c', 'full_page_writes=off', '-c', 'max_connections=50');
    for (const [name, value] of Object.entries(options.settings ?? {})) args.push('-c', `${name}=${value}`);
    // Its own process group: signals meant for the test run (Ctrl-C) go to vitest, which stops it cleanly.
    child = spawn(join(bin, 'postgres'), args, { stdio: 'ignore', detached: true, ...(user ?? {}) });
    await waitUntilReady(host, port, child);
  };
  const kill = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    signalGroup(running, 'SIGCONT');
    running.kill('SIGQUIT');
    await exited;
  };

  for (let attempt = 0; ; attempt++) {
    port = await findFreePort(false);
    try {
      await launch();
      break;
    } catch (error) {
      await kill();
      if (attempt >= 4) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  return {
    host,
    port,
    url: `postgres://postgres@${host}:${port}/postgres`,
    kill,
    pause: () => child && signalGroup(child, 'SIGSTOP'),
    resume: () => child && signalGroup(child, 'SIGCONT'),
    restart: async () => {
      await kill();
      await launch();
    },
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
};

/** Whether a server answers at `url` within 2 s. */
export const postgresAnswers = async (url: string): Promise<boolean> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
};

// ---- internal helpers ----

/** `undefined`: run as ourselves; the postgres user's ids under root; `null`: root without a postgres user. */
const runAs = (): { uid: number; gid: number } | undefined | null => {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string): number => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  const gid = id('-g');
  return Number.isInteger(uid) && uid > 0 && Number.isInteger(gid) ? { uid, gid } : null;
};

/** Signals the postmaster and every backend (each backend is a session leader of its own, so not in our group). */
const signalGroup = (child: ChildProcess, signal: NodeJS.Signals): void => {
  if (!child.pid) return;
  const children = spawnSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], { encoding: 'utf8' }).stdout;
  const pids = [child.pid, ...children.split(/\s+/).filter(Boolean).map(Number)];
  for (const pid of signal === 'SIGSTOP' ? pids : pids.reverse()) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
};

const waitUntilReady = async (host: string, port: number, child: ChildProcess): Promise<void> => {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`postgres on port ${port} exited with code ${child.exitCode}`);
    if (await postgresAnswers(`postgres://postgres@${host}:${port}/postgres`)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`postgres on port ${port} did not accept connections within 20 s`);
};

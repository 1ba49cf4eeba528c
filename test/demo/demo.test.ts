import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { postgresTarget } from '../helpers/postgresClients';

const run = promisify(execFile);
const tsx = ['--import', 'tsx', 'examples/demo/demo.ts', '--quick', '--seed', '7'];

const demo = async (...extra: string[]): Promise<{ code: number; stdout: string }> => demoWith({}, ...extra);

const demoWith = async (env: Record<string, string>, ...extra: string[]): Promise<{ code: number; stdout: string }> => {
  try {
    const { stdout } = await run(process.execPath, [...tsx, ...extra], { timeout: 60_000, env: { ...process.env, ...env } });
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '' };
  }
};

const count = (stdout: string, label: string): number => {
  const match = new RegExp(`${label}\\s+(\\d+)`).exec(stdout);
  if (!match) throw new Error(`no "${label}" row in:\n${stdout}`);
  return Number(match[1]);
};

describe('npm start (the demo)', () => {
  it('places every order exactly once through lost responses and double clicks', async () => {
    const { code, stdout } = await demo();
    expect(code).toBe(0);
    expect(count(stdout, 'procedure executions')).toBe(40);
    expect(count(stdout, 'orders charged more than once')).toBe(0);
    expect(count(stdout, 'responses lost after the server ran')).toBeGreaterThan(0);
    expect(count(stdout, 'replays \\(server\\)')).toBeGreaterThan(0);
  });

  it('also holds when duplicates get CONFLICT and retry', async () => {
    const { code, stdout } = await demo('--on-in-progress', 'reject');
    expect(code).toBe(0);
    expect(count(stdout, 'procedure executions')).toBe(40);
  });

  it('exits 1 and reports double charges without the middleware (its check can fail)', async () => {
    const { code, stdout } = await demo('--without-idempotency');
    expect(code).toBe(1);
    expect(count(stdout, 'orders charged more than once')).toBeGreaterThan(0);
  });

  it('holds on the PostgreSQL store (--store postgres), in a schema of its own that it drops at the end', async () => {
    const { url } = postgresTarget();
    const { code, stdout } = await demoWith({ DATABASE_URL: url }, '--store', 'postgres');
    expect(code).toBe(0);
    expect(count(stdout, 'procedure executions')).toBe(40);
    expect(count(stdout, 'orders charged more than once')).toBe(0);
    expect(count(stdout, 'replays \\(server\\)')).toBeGreaterThan(0);
    const schema = /schema (idem_demo_\w+) is dropped/.exec(stdout)?.[1];
    expect(schema).toBeDefined();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      expect(rowCount).toBe(0);
    } finally {
      await client.end();
    }
  });
});

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const tsx = ['--import', 'tsx', 'examples/demo/demo.ts', '--quick', '--seed', '7'];

const demo = async (...extra: string[]): Promise<{ code: number; stdout: string }> => {
  try {
    const { stdout } = await run(process.execPath, [...tsx, ...extra], { timeout: 60_000 });
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
});

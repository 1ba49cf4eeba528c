import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderRouter } from './fixtures/orderServer';
import { randomPrefix, redisTarget } from '../helpers/redisClients';

interface AppProcess {
  url: string;
  child: ChildProcess;
}

const startApp = async (env: Record<string, string>): Promise<AppProcess> => {
  const tsx = join(import.meta.dirname, '../../node_modules/.bin/tsx');
  const child = spawn(tsx, [join(import.meta.dirname, 'fixtures/orderServer.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => Promise.reject(new Error(`orderServer exited with ${String(code)}`))),
  ])) as [string];
  return { url: (JSON.parse(line) as { url: string }).url, child };
};

const clientOf = (url: string, key: string) =>
  createTRPCClient<OrderRouter>({ links: [httpLink({ url, headers: { 'idempotency-key': key } })] });

type CallResult = { ok: true; data: unknown } | { ok: false; code: string };

const call = async (url: string, key: string, item = 'book'): Promise<CallResult> => {
  try {
    return { ok: true, data: await clientOf(url, key).createOrder.mutate({ item }) };
  } catch (error) {
    if (error instanceof TRPCClientError) return { ok: false, code: String(error.data?.code) };
    throw error;
  }
};

// Two app processes share one Redis; a burst of calls with one key lands on both at once.
describe('two server processes sharing one Redis', () => {
  const prefix = randomPrefix();
  const counterKey = `${prefix}executions`;
  let redis: Redis;
  let rejecting: AppProcess;
  let waiting: AppProcess;

  beforeAll(async () => {
    const { url } = redisTarget();
    redis = new Redis(url);
    const env = { REDIS_URL: url, PREFIX: prefix, COUNTER_KEY: counterKey, WORK_MS: '300' };
    [rejecting, waiting] = await Promise.all([
      startApp({ ...env, ON_IN_PROGRESS: 'reject' }),
      startApp({ ...env, ON_IN_PROGRESS: 'wait' }),
    ]);
  }, 60_000);
  afterAll(async () => {
    for (const app of [rejecting, waiting]) {
      if (!app) continue;
      const exited = once(app.child, 'exit');
      app.child.kill('SIGTERM');
      await exited;
    }
    await redis.quit();
  });

  it('runs the mutation exactly once for 200 concurrent calls over both; the rest get the result or CONFLICT', async () => {
    const key = randomUUID();
    const counter = `${counterKey}`;
    await redis.del(counter);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => call(i % 2 === 0 ? rejecting.url : waiting.url, key)),
    );
    expect(Number(await redis.get(counter))).toBe(1);

    const successes = results.filter((r): r is { ok: true; data: unknown } => r.ok);
    const failures = results.filter((r): r is { ok: false; code: string } => !r.ok);
    expect(successes.length + failures.length).toBe(200);
    // One result, served to everyone who got one, whichever process ran it.
    const [first] = successes;
    expect(first?.data).toMatchObject({ orderId: 'order-1', item: 'book' });
    for (const success of successes) expect(success.data).toEqual(first?.data);
    for (const failure of failures) expect(failure.code).toBe('CONFLICT');
    // The waiting process (onInProgress 'wait') answered every one of its 100 calls with the result.
    const fromWaiting = results.filter((_, i) => i % 2 === 1);
    expect(fromWaiting.every((r) => r.ok)).toBe(true);

    // Later retries on either process replay the stored result.
    const replays = await Promise.all(
      Array.from({ length: 20 }, (_, i) => call(i % 2 === 0 ? rejecting.url : waiting.url, key)),
    );
    for (const replay of replays) expect(replay).toEqual({ ok: true, data: first?.data });
    expect(Number(await redis.get(counter))).toBe(1);
  });

  it('runs calls with different keys once each, across both processes', async () => {
    await redis.del(counterKey);
    const keys = Array.from({ length: 20 }, () => randomUUID());
    const results = await Promise.all(
      keys.flatMap((key, i) => [call(rejecting.url, key, `item-${i}`), call(waiting.url, key, `item-${i}`)]),
    );
    expect(Number(await redis.get(counterKey))).toBe(20);
    expect(results.filter((r) => r.ok).length).toBeGreaterThanOrEqual(20);
  });
});

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createTRPCClient, httpLink } from '@trpc/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresTable } from '../../src/stores/postgres';
import { connectPool, dropTable, postgresTarget, randomTable } from '../helpers/postgresClients';
import { randomPrefix, redisTarget } from '../helpers/redisClients';
import { startFakeDownstream } from './fixtures/fakeDownstream';
import type { StepsAppRouter } from './fixtures/stepsApp';

/**
 * Durable steps across a real crash: an app process (tsx) is SIGKILLed in the middle of an order, a fresh process
 * takes the key over once the dead one's lease ends, and a fake downstream service counts what was called.
 */

const LOCK_TTL_MS = 1_000;

const startApp = async (env: Record<string, string>): Promise<ChildProcess & { url: string }> => {
  // node itself with tsx's loader, not the tsx CLI: the CLI runs the app in a child process of its own, which a
  // SIGKILL of the CLI would leave running.
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures/stepsApp.ts')], {
    env: { ...process.env, ...env, LOCK_TTL_MS: String(LOCK_TTL_MS) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(([code]) => Promise.reject(new Error(`stepsApp exited with ${String(code)}`))),
  ])) as [string];
  return Object.assign(child, { url: (JSON.parse(line) as { url: string }).url });
};

const kill = async (child: ChildProcess): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
};

const order = (url: string, key: string) =>
  createTRPCClient<StepsAppRouter>({ links: [httpLink({ url, headers: { 'idempotency-key': key } })] }).placeOrder.mutate({
    item: 'book',
  });

const stores: { name: string; setup: () => Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> }[] = [
  {
    name: 'Redis',
    setup: async () => ({ env: { STORE: 'redis', REDIS_URL: redisTarget().url, PREFIX: randomPrefix() }, cleanup: async () => {} }),
  },
  {
    name: 'PostgreSQL',
    setup: async () => {
      const pool = connectPool();
      const table = randomTable();
      await createPostgresTable(pool, table);
      return {
        env: { STORE: 'postgres', DATABASE_URL: postgresTarget().url, TABLE: table },
        cleanup: async () => {
          await dropTable(pool, table);
          await pool.end();
        },
      };
    },
  },
];

describe.each(stores)('durable steps survive SIGKILL of the app process ($name)', ({ setup }) => {
  let env: Record<string, string>;
  let cleanup: () => Promise<void>;
  let downstream: Awaited<ReturnType<typeof startFakeDownstream>>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    ({ env, cleanup } = await setup());
    downstream = await startFakeDownstream();
    env = { ...env, DOWNSTREAM: downstream.url };
  }, 60_000);
  afterAll(async () => {
    await Promise.all(children.map(kill));
    await downstream?.close();
    await cleanup?.();
  });

  const app = async () => {
    const child = await startApp(env);
    children.push(child);
    return child;
  };

  it('after step 1 is recorded and before step 2: the retry does not call step 1 again, runs step 2 and completes', async () => {
    const key = randomUUID();
    const [first, second] = await Promise.all([app(), app()]);
    const emailReached = downstream.hold('/email');
    const crashed = order(first.url, key).catch((error: unknown) => error);
    await emailReached; // step 1 (charge) is recorded: step() resolved before step 2 started
    await kill(first);
    expect(await crashed).toBeInstanceOf(Error);

    const chargesBefore = downstream.callsTo('/charge').length;
    const result = await order(second.url, key); // waits out the dead owner's lease, then takes over
    expect(chargesBefore).toBe(1);
    expect(downstream.callsTo('/charge')).toHaveLength(1);
    expect(downstream.callsTo('/email')).toHaveLength(2);
    expect(downstream.performedAt('/email')).toHaveLength(1); // the second email call carried the same step key
    expect(result.charge).toEqual({ id: expect.stringMatching(/^charge_/), key: downstream.callsTo('/charge')[0]?.key });
    expect(result.servedBy).toBe(second.pid);

    // Completed: retries replay it and call nothing.
    expect(await order(second.url, key)).toEqual(result);
    expect(downstream.callsTo('/charge')).toHaveLength(1);
    expect(downstream.callsTo('/email')).toHaveLength(2);
  });

  it("after step 1's fn ran and before its record landed: the retry calls it again with the same step key, performed once", async () => {
    const key = randomUUID();
    const [first, second] = await Promise.all([app(), app()]);
    const calls = downstream.calls.length;
    const chargeReached = downstream.hold('/charge');
    const crashed = order(first.url, key).catch((error: unknown) => error);
    await chargeReached; // the payment was performed; the app never hears back, so nothing is recorded
    await kill(first);
    expect(await crashed).toBeInstanceOf(Error);

    const result = await order(second.url, key);
    const mine = downstream.calls.slice(calls);
    const charges = mine.filter((c) => c.path === '/charge');
    expect(charges).toHaveLength(2);
    expect(charges[1]?.key).toBe(charges[0]?.key);
    expect(downstream.performed.filter((c) => c.path === '/charge' && c.key === charges[0]?.key)).toHaveLength(1);
    expect(mine.filter((c) => c.path === '/email')).toHaveLength(1);
    expect(result.servedBy).toBe(second.pid);
    expect(await order(second.url, key)).toEqual(result);
  });
});

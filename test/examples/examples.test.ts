import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createTRPCClient, httpBatchLink, httpLink } from '@trpc/client';
import superjson from 'superjson';
import { afterEach, describe, expect, it } from 'vitest';
import { run as runCaller } from '../../examples/caller/main';
import { start as startExpress } from '../../examples/express/server';
import { createFetchHandler, ENDPOINT } from '../../examples/fetch/handler';
import { start as startFetch } from '../../examples/fetch/server';
import { start as startReactForm } from '../../examples/react-form/server';
import { start as startRedisCluster } from '../../examples/redis-cluster/server';
import { start as startRedis } from '../../examples/redis/server';
import type { Order, OrderRouter } from '../../examples/shared/orders';
import { start as startStandalone } from '../../examples/standalone/server';
import type { IdempotencyCallInfo } from '../../src/client/index';
import { idempotencyHeaders, idempotencyLink } from '../../src/client/index';
import { hasCluster, randomPrefix, redisTarget } from '../helpers/redisClients';

interface Running {
  url: string;
  orders: Order[];
  close(): Promise<void>;
}

const running: Running[] = [];
const track = <T extends Running>(server: T): T => {
  running.push(server);
  return server;
};
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

const input = { item: 'book', quantity: 2 };

/** POSTs `order.create` as httpLink does, with the key in `Idempotency-Key`. */
const createOrder = async (baseUrl: string, key: string, userId = 'user-1') => {
  const response = await fetch(`${baseUrl}/order.create`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key, 'x-user-id': userId },
    body: superjson.stringify(input),
  });
  const body = (await response.json()) as { result: { data: Parameters<typeof superjson.deserialize>[0] } };
  return {
    status: response.status,
    idempotencyStatus: response.headers.get('idempotency-status'),
    replayed: response.headers.get('idempotent-replayed'),
    order: superjson.deserialize<Order>(body.result.data),
  };
};

/** The same key twice: the first call runs, the second is replayed with the same order. */
const expectRunThenReplay = async (server: Running, key = `key-${randomUUID()}`) => {
  const first = await createOrder(server.url, key);
  expect(first).toMatchObject({ status: 200, idempotencyStatus: JSON.stringify({ [key]: 'executed' }), replayed: null });
  const second = await createOrder(server.url, key);
  expect(second).toMatchObject({ status: 200, idempotencyStatus: JSON.stringify({ [key]: 'replayed' }), replayed: 'true' });
  expect(second.order).toEqual(first.order);
  expect(second.order.createdAt).toBeInstanceOf(Date);
  return first.order;
};

const linkClient = (url: string, batch = false) =>
  createTRPCClient<OrderRouter>({
    links: [
      idempotencyLink({ onWarning: (warning) => expect.fail(warning.message) }),
      batch
        ? httpBatchLink({ url, transformer: superjson, headers: idempotencyHeaders })
        : httpLink({ url, transformer: superjson, headers: idempotencyHeaders }),
    ],
  });

describe('examples/standalone', () => {
  it('runs a keyed mutation once and replays it, per user', async () => {
    const server = track(await startStandalone(0));
    await expectRunThenReplay(server, 'standalone-1');
    expect(server.orders).toHaveLength(1);
    // The same key from another user is another request: scope comes from the user id.
    const other = await createOrder(server.url, 'standalone-1', 'user-2');
    expect(other.idempotencyStatus).toBe(JSON.stringify({ 'standalone-1': 'executed' }));
    expect(server.orders.map((order) => order.userId)).toEqual(['user-1', 'user-2']);
  });

  it('reports the replay to the client link per call', async () => {
    const server = track(await startStandalone(0));
    const client = linkClient(server.url, true);
    const first: IdempotencyCallInfo = {};
    const second: IdempotencyCallInfo = {};
    const a = await client.order.create.mutate(input, { context: { idempotency: first } });
    const b = await client.order.create.mutate(input, { context: { idempotencyKey: first.key, idempotency: second } });
    expect(first).toMatchObject({ replayed: false, status: 'executed' });
    expect(second).toMatchObject({ key: first.key, replayed: true, status: 'replayed' });
    expect(b).toEqual(a);
    expect(server.orders).toHaveLength(1);
  });
});

describe('examples/fetch', () => {
  it('runs a keyed mutation once and replays it', async () => {
    const server = track(await startFetch(0));
    await expectRunThenReplay(server);
    expect(server.orders).toHaveLength(1);
  });

  it('works as a bare Request -> Response handler, as a Next.js route handler is called', async () => {
    const { handler, orders } = createFetchHandler();
    const request = () =>
      new Request(`http://localhost${ENDPOINT}/order.create`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'route-1' },
        body: superjson.stringify(input),
      });
    const first = await handler(request());
    const second = await handler(request());
    expect(first.headers.get('idempotency-status')).toBe('{"route-1":"executed"}');
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await second.json()).toEqual(await first.json());
    expect(orders).toHaveLength(1);
  });
});

describe('examples/express', () => {
  it('runs a keyed mutation once and replays it', async () => {
    const server = track(await startExpress(0));
    await expectRunThenReplay(server);
    expect(server.orders).toHaveLength(1);
  });

  it('reports the replay to the client link', async () => {
    const server = track(await startExpress(0));
    const client = linkClient(server.url);
    const infos: IdempotencyCallInfo[] = [{}, {}];
    for (const info of infos) await client.order.create.mutate(input, { context: { idempotencyKey: 'express-link', idempotency: info } });
    expect(infos.map((info) => info.replayed)).toEqual([false, true]);
    expect(server.orders).toHaveLength(1);
  });
});

describe('examples/react-form', () => {
  it('serves the page, its bundle and the API on one origin', async () => {
    const server = track(await startReactForm(0));
    const page = await fetch(server.url);
    expect(await page.text()).toContain("import { mount } from '/app.js'");
    const script = await fetch(`${server.url}/app.js`);
    expect(script.headers.get('content-type')).toContain('text/javascript');
    expect((await script.text()).length).toBeGreaterThan(1000);
    await expectRunThenReplay({ ...server, url: `${server.url}/trpc` });
    expect(server.orders).toHaveLength(1);
  });
});

describe('examples/caller', () => {
  it('runs each job and webhook once although each is delivered twice', async () => {
    const { deliveries, charges, credits } = await runCaller();
    expect(charges).toHaveLength(1);
    expect(credits).toHaveLength(1);
    expect(deliveries[1]?.charge).toEqual(deliveries[0]?.charge);
    expect(deliveries[1]?.credit).toEqual(deliveries[0]?.credit);
  });
});

describe('examples/redis', () => {
  it('replays on a second instance what the first one ran', async () => {
    const options = { port: 0, redisUrl: redisTarget().url, prefix: randomPrefix() };
    const a = track(await startRedis(options));
    const b = track(await startRedis(options));
    const key = `redis-${randomUUID()}`;
    const first = await createOrder(a.url, key);
    expect(first.idempotencyStatus).toBe(JSON.stringify({ [key]: 'executed' }));
    const second = await createOrder(b.url, key);
    expect(second).toMatchObject({ idempotencyStatus: JSON.stringify({ [key]: 'replayed' }), replayed: 'true' });
    expect(second.order).toEqual(first.order);
    expect([a.orders.length, b.orders.length]).toEqual([1, 0]);
  });
});

describe.runIf(hasCluster())('examples/redis-cluster', () => {
  it('replays on a second instance what the first one ran', async () => {
    const { clusterNodes } = redisTarget();
    const options = { port: 0, nodes: clusterNodes, prefix: randomPrefix() };
    const a = track(await startRedisCluster(options));
    const b = track(await startRedisCluster(options));
    for (let i = 0; i < 5; i++) {
      // Several keys, so records land on more than one master.
      const key = `cluster-${i}-${randomUUID()}`;
      const first = await createOrder(a.url, key);
      expect(first.idempotencyStatus).toBe(JSON.stringify({ [key]: 'executed' }));
      const second = await createOrder(b.url, key);
      expect(second).toMatchObject({ idempotencyStatus: JSON.stringify({ [key]: 'replayed' }), replayed: 'true' });
      expect(second.order).toEqual(first.order);
    }
    expect([a.orders.length, b.orders.length]).toEqual([5, 0]);
  });
});

describe('running the examples as scripts (tsx)', () => {
  /** Starts `tsx <file>` with PORT=0 and waits for its output to match `until`. */
  const startScript = async (file: string, until: RegExp) => {
    const child = spawn('node_modules/.bin/tsx', [file], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const stop = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill();
      await once(child, 'exit');
    };
    try {
      const match = await new Promise<RegExpMatchArray>((resolve, reject) => {
        const onOutput = (chunk: Buffer) => {
          output += chunk.toString();
          const found = output.match(until);
          if (found) resolve(found);
        };
        child.stdout.on('data', onOutput);
        child.stderr.on('data', onOutput);
        child.once('exit', (code) => reject(new Error(`${file} exited (${code}) before printing ${until}:\n${output}`)));
      });
      return { match, stop };
    } catch (error) {
      await stop();
      throw error;
    }
  };

  it.each([
    ['examples/standalone/server.ts', ''],
    ['examples/fetch/server.ts', ''],
    ['examples/express/server.ts', ''],
    ['examples/react-form/server.ts', '/trpc'],
  ])('%s listens on PORT and answers a keyed mutation', async (file, apiPath) => {
    const { match, stop } = await startScript(file, /(http:\/\/\S+)/);
    try {
      const url = `${match[1]}${apiPath}`;
      const first = await createOrder(url, 'script-1');
      const second = await createOrder(url, 'script-1');
      expect([first.idempotencyStatus, second.replayed]).toEqual(['{"script-1":"executed"}', 'true']);
    } finally {
      await stop();
    }
  });

  it('examples/caller/main.ts charges once for two deliveries', async () => {
    const { match, stop } = await startScript('examples/caller/main.ts', /charges made: \d+, credits applied: \d+/);
    await stop();
    expect(match[0]).toBe('charges made: 1, credits applied: 1');
  });
});

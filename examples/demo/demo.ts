/**
 * `npm start`: several shoppers place orders through a network that loses responses after the server ran the
 * mutation, and double-click "Place order" now and then. Every order must be charged exactly once.
 *
 *   npm start -- [--clients 8] [--orders 25] [--drop 0.25] [--dup 0.2] [--on-in-progress wait|reject]
 *                [--store memory|redis|postgres] [--table SCHEMA.TABLE] [--seed 42] [--quick] [--without-idempotency]
 *
 * `--without-idempotency` sends the same traffic to the same procedure without the middleware: expect double
 * charges and exit code 1.
 * `--store redis` uses REDIS_URL (default redis://127.0.0.1:6379). `--store postgres` uses DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/test): a schema of its own (`idem_demo_<random>`), dropped at the
 * end with everything in it, or the table `--table` names (created with createPostgresTable when missing, kept).
 * Exits 1 on any double execution.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createTRPCClient, httpBatchLink, httpLink, retryLink } from '@trpc/client';
import superjson from 'superjson';
import { idempotencyHeaders, idempotencyLink, idempotentRetry } from 'trpc-idempotency/client';
import type { IdempotencyStore } from 'trpc-idempotency';
import { createMemoryStore } from 'trpc-idempotency';
import { startFlakyProxy } from './flakyProxy';
import type { ShopRouter } from './shop';
import { startShop } from './shop';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '8' },
    orders: { type: 'string', default: '25' },
    drop: { type: 'string', default: '0.25' },
    dup: { type: 'string', default: '0.2' },
    'on-in-progress': { type: 'string', default: 'wait' },
    store: { type: 'string', default: 'memory' },
    table: { type: 'string' },
    seed: { type: 'string', default: String(Date.now() % 100_000) },
    quick: { type: 'boolean', default: false },
    'without-idempotency': { type: 'boolean', default: false },
  },
});

const clients = args.quick ? 4 : Number(args.clients);
const ordersPerClient = args.quick ? 10 : Number(args.orders);
const dropRate = Number(args.drop);
const dupRate = Number(args.dup);
const onInProgress = args['on-in-progress'] === 'reject' ? 'reject' : 'wait';
const guarded = !args['without-idempotency'];

/** mulberry32: a small seeded PRNG, so a run's drops and double clicks can be replayed with --seed. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
};
const random = seeded(Number(args.seed));

const openStore = async (): Promise<{ store: IdempotencyStore; close: () => Promise<void> }> => {
  if (args.store === 'postgres') {
    const [{ default: pg }, { createPostgresStore, createPostgresTable }] = await Promise.all([import('pg'), import('trpc-idempotency/postgres')]);
    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' });
    pool.on('error', (error) => console.error('postgres pool error', error)); // node-postgres asks for a listener
    // Never a table of yours: a fresh schema per run (the table's functions and sequence go with it), unless --table.
    const schema = args.table ? undefined : `idem_demo_${randomUUID().replace(/-/g, '').slice(0, 8)}`;
    if (schema) await pool.query(`CREATE SCHEMA ${schema}`);
    const table = args.table ?? `${schema}.idempotency`;
    await createPostgresTable(pool, table);
    const store = createPostgresStore({ pool, table });
    console.log(`postgres store: table ${table}${schema ? ` (schema ${schema} is dropped at the end)` : ''}`);
    const close = async (): Promise<void> => {
      await store.close();
      if (schema) await pool.query(`DROP SCHEMA ${schema} CASCADE`);
      await pool.end();
    };
    return { store, close };
  }
  if (args.store !== 'redis') return { store: createMemoryStore(), close: async () => {} };
  const [{ Redis }, { createRedisStore }] = await Promise.all([import('ioredis'), import('trpc-idempotency/redis')]);
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  return { store: createRedisStore({ redis, prefix: `demo:${randomUUID()}:` }), close: async () => void redis.disconnect() };
};

const progress = (done: number, total: number): void => {
  const width = 30;
  const filled = Math.round((done / total) * width);
  const line = `  [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} orders`;
  if (process.stdout.isTTY) process.stdout.write(`\r${line}${done === total ? '\n' : ''}`);
  else if (done === total || done % Math.ceil(total / 4) === 0) console.log(line);
};

const main = async (): Promise<number> => {
  const { store, close: closeStore } = await openStore();
  const shop = await startShop(store, { onInProgress, guarded });
  const proxy = await startFlakyProxy({ target: new URL(shop.url), dropRate, random });
  const client = { replays: 0, failures: 0, doubleClicks: 0, mismatchedOrders: 0 };

  const makeClient = (batched: boolean) =>
    createTRPCClient<ShopRouter>({
      links: [
        idempotencyLink({ onReplay: () => void client.replays++, onWarning: guarded ? undefined : () => {} }),
        // Without the middleware the retry helper would (rightly) refuse to retry: retry network errors blindly then,
        // as a naive client does.
        retryLink(guarded ? idempotentRetry({ maxAttempts: 10, baseDelayMs: 10, maxDelayMs: 200 }) : { retry: ({ attempts }) => attempts < 10 }),
        batched
          ? httpBatchLink({ url: proxy.url, transformer: superjson, headers: idempotencyHeaders })
          : httpLink({ url: proxy.url, transformer: superjson, headers: idempotencyHeaders }),
      ],
    });

  console.log(
    `trpc-idempotency demo: ${clients} shoppers x ${ordersPerClient} orders, ${Math.round(dropRate * 100)}% of responses lost, ` +
      `${Math.round(dupRate * 100)}% double clicks, ` +
      (guarded
        ? `duplicates ${onInProgress === 'wait' ? 'wait for the first call' : 'get CONFLICT and retry'}, ${args.store} store (seed ${args.seed})`
        : `WITHOUT the idempotency middleware (seed ${args.seed})`),
  );
  const total = clients * ordersPerClient;
  let done = 0;
  progress(0, total);
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const trpc = makeClient(c % 2 === 1);
      for (let i = 0; i < ordersPerClient; i++) {
        const order = { customer: `shopper-${c}`, cents: 100 + i };
        // One key per submit intent, as a form keeps it: a double click sends the same key twice.
        const idempotencyKey = randomUUID();
        const clicks = random() < dupRate ? 2 : 1;
        if (clicks === 2) client.doubleClicks++;
        const results = await Promise.allSettled(
          Array.from({ length: clicks }, () => trpc.placeOrder.mutate(order, { context: { idempotencyKey } })),
        );
        const ids = new Set(results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.orderId] : [])));
        client.failures += results.filter((r) => r.status === 'rejected').length;
        if (ids.size > 1) client.mismatchedOrders++;
        progress(++done, total);
      }
    }),
  );

  const doubles = [...shop.stats.executionsByOrder.values()].filter((n) => n > 1).length;
  const rows: [string, number | string][] = [
    ['orders placed (submit intents)', total],
    ['double clicks (same key sent twice)', client.doubleClicks],
    ['HTTP requests sent', proxy.stats.requests],
    ['responses lost after the server ran', proxy.stats.dropped],
    ['procedure executions', shop.stats.executions],
    ['replays (server)', shop.stats.replays],
    ['replays reported to clients', client.replays],
    ['conflicts (in progress)', shop.stats.conflicts],
    ['duplicates prevented', shop.stats.replays + shop.stats.conflicts],
    ['calls that failed after all retries', client.failures],
    ['orders charged more than once', doubles],
  ];
  const width = Math.max(...rows.map(([label]) => label.length));
  console.log(`\n  ${'what'.padEnd(width)}  count`);
  console.log(`  ${'-'.repeat(width)}  -----`);
  for (const [label, value] of rows) console.log(`  ${label.padEnd(width)}  ${String(value).padStart(5)}`);
  console.log('  (the server counts more replays than clients see: a replay whose response was lost is replayed again)');

  await proxy.close();
  await shop.close();
  await closeStore();
  const problems: string[] = [];
  if (doubles > 0) problems.push(`${doubles} orders charged more than once`);
  if (client.mismatchedOrders > 0) problems.push(`${client.mismatchedOrders} double clicks got two different orders`);
  if (shop.stats.executions > total) problems.push(`${shop.stats.executions} executions for ${total} orders`);
  if (problems.length > 0) {
    console.error(`\nFAIL: ${problems.join('; ')}`);
    return 1;
  }
  console.log(`\nOK: ${shop.stats.executions} executions for ${total} orders; no order was charged twice.`);
  return 0;
};

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(2);
  },
);

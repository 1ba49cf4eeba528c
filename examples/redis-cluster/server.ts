/**
 * Redis store on a Redis Cluster. Each record key carries its own hash tag (`<prefix>{<id>}`), so the Lua
 * scripts touch one slot per call while records spread over all masters. Pass an ioredis `Cluster`; nothing else
 * changes.
 * Run: `REDIS_CLUSTER_NODES=127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002 npx tsx examples/redis-cluster/server.ts`.
 */
import { once } from 'node:events';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import { Cluster } from 'ioredis';
import { idempotencyResponseMeta } from 'trpc-idempotency';
import { createRedisStore } from 'trpc-idempotency/redis';
import { createOrderApp, isMain, urlOf, userIdFrom } from '../shared/orders';

export interface RedisClusterExampleOptions {
  port?: number;
  /** `host:port` of some cluster nodes (ioredis discovers the rest). @default process.env.REDIS_CLUSTER_NODES, comma-separated */
  nodes?: string[];
  prefix?: string;
}

const nodesFromEnv = (): string[] => (process.env.REDIS_CLUSTER_NODES ?? '').split(',').filter(Boolean);

export const start = async ({ port = 3000, nodes = nodesFromEnv(), prefix = 'shop:idem:' }: RedisClusterExampleOptions = {}) => {
  if (nodes.length === 0) throw new Error('Set REDIS_CLUSTER_NODES, e.g. REDIS_CLUSTER_NODES=127.0.0.1:7000,127.0.0.1:7001');
  const redis = new Cluster(
    nodes.map((node) => {
      const [host = '127.0.0.1', portText] = node.split(':');
      return { host, port: Number(portText) };
    }),
  );
  const { router, orders } = createOrderApp({ store: createRedisStore({ redis, prefix }) });
  const server = createHTTPServer({
    router,
    createContext: ({ req }) => ({ req, userId: userIdFrom(req.headers['x-user-id']) }),
    responseMeta: idempotencyResponseMeta(),
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: urlOf(server.address()),
    orders,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await redis.quit();
    },
  };
};

if (isMain(import.meta.url)) {
  const { url } = await start({ port: Number(process.env.PORT ?? 3000) });
  console.log(`redis cluster example listening on ${url}`);
}

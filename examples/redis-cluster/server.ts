/**
 * Redis store on a Redis Cluster. Each record key carries its own hash tag (`<prefix>{<id>}`), so the Lua
 * scripts touch one slot per call while records spread over all masters. Pass an ioredis `Cluster`; nothing else
 * changes.
 * Run: `REDIS_CLUSTER_NODES=127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002 npx tsx examples/redis-cluster/server.ts`.
 */
import { Cluster } from 'ioredis';
import { isMain } from '../shared/orders';
import { startOnRedis } from '../redis/server';

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
  // Nothing else changes: the same server as examples/redis, on the Cluster client.
  return startOnRedis(redis, { port, prefix });
};

if (isMain(import.meta.url)) {
  const { url } = await start({ port: Number(process.env.PORT ?? 3000) });
  console.log(`redis cluster example listening on ${url}`);
}

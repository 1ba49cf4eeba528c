import { randomUUID } from 'node:crypto';
import type { ClusterOptions, RedisOptions } from 'ioredis';
import { Cluster, Redis } from 'ioredis';
import { inject } from 'vitest';
import type { ProvidedRedis } from './globalSetup';
import { createRedisStore } from '../../src/redis';
import type { StoreHarness } from '../../src/testing/storeConformance';

/** The Redis the global setup found; throws its setup error (what to install) when there is none. */
export const redisTarget = (): ProvidedRedis & { url: string } => {
  const redis = inject('redis');
  if (!redis.url) throw new Error(redis.setupError ?? 'no Redis for the tests');
  return { ...redis, url: redis.url };
};

/** A client of the shared single node. */
export const connectRedis = (options: RedisOptions = {}): Redis => new Redis(redisTarget().url, options);

/** A client of the shared cluster, or undefined when the setup has none. */
export const connectCluster = (options: ClusterOptions = {}): Cluster | undefined => {
  const nodes = inject('redis').clusterNodes;
  if (nodes.length === 0) return undefined;
  return new Cluster(
    nodes.map((node) => {
      const [host, port] = node.split(':');
      return { host: host ?? '127.0.0.1', port: Number(port) };
    }),
    options,
  );
};

/** Whether the setup provides a cluster (REDIS_CLUSTER_NODES or a spawned one). */
export const hasCluster = (): boolean => inject('redis').clusterNodes.length > 0;

/** A fresh key prefix per test, so tests never see each other's records. */
export const randomPrefix = (): string => `test-${randomUUID().slice(0, 8)}:`;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The conformance suite's harness over a Redis store on `client` (any ioredis 5 or 6 `Redis` or `Cluster`). */
export const redisStoreHarness = async (
  client: Redis | Cluster,
  options: { leaseGraceMs?: number; releasedTtlMs?: number } = {},
): Promise<StoreHarness> => {
  const store = createRedisStore({ redis: client, prefix: randomPrefix(), ...options });
  return {
    store,
    // Real Redis has a real clock: `advance` is a real wait.
    advance: sleep,
    close: async () => {
      await store.close();
      await client.quit();
    },
  };
};

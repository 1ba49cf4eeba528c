import type { Cluster as Cluster6, Redis as Redis6 } from 'ioredis';
import { Cluster, Redis } from 'ioredis5';
import { describe, expect, inject, it } from 'vitest';
import { describeStepConformance } from '../../src/testing/stepConformance';
import { describeStoreConformance } from '../../src/testing/storeConformance';
import { hasCluster, redisStoreHarness, redisTarget } from '../helpers/redisClients';

// The store takes "the user's ioredis 5 or 6 client": the same suite, on ioredis 5 (installed as `ioredis5`).
const lockTtlMs = 200;

// The store is typed for ioredis 6's classes; at runtime it takes version 5's as they are.
const harness = (client: Redis | Cluster) => redisStoreHarness(client as unknown as Redis6 | Cluster6);

const clusterNodes = () =>
  inject('redis').clusterNodes.map((node) => {
    const [host, port] = node.split(':');
    return { host: host ?? '127.0.0.1', port: Number(port) };
  });

describe('ioredis 5', () => {
  it('is really version 5', async () => {
    const { createRequire } = await import('node:module');
    const version = (createRequire(import.meta.url)('ioredis5/package.json') as { version: string }).version;
    expect(version).toMatch(/^5\./);
  });
});

describeStoreConformance('createRedisStore on ioredis 5 (single node, keyPrefix "v5:")', async () =>
  harness(new Redis(redisTarget().url, { keyPrefix: 'v5:' })), { lockTtlMs });

describeStepConformance(
  'createRedisStore on ioredis 5 (single node)',
  async () => redisStoreHarness(new Redis(redisTarget().url) as unknown as Redis6, { leaseGraceMs: 300, releasedTtlMs: 300 }),
  { lockTtlMs, leaseGraceMs: 300, releasedTtlMs: 300 },
);

describe.runIf(hasCluster())('ioredis 5 on a 3-master cluster', () => {
  describeStoreConformance('createRedisStore on ioredis 5 (Cluster)', async () => harness(new Cluster(clusterNodes())), { lockTtlMs });
});

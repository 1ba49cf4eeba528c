import { describe } from 'vitest';
import { describeStepConformance } from '../../src/testing/stepConformance';
import { describeStoreConformance } from '../../src/testing/storeConformance';
import { connectCluster, connectRedis, hasCluster, redisStoreHarness } from '../helpers/redisClients';

// Real Redis has a real clock: leases of 200 ms, and `advance` is a real wait.
const lockTtlMs = 200;

const harness = redisStoreHarness;

// Steps are checked against a short grace and released TTL, so their retention shows within a second.
const retention = { leaseGraceMs: 300, releasedTtlMs: 300 };
const stepOptions = { lockTtlMs, ...retention };
describeStepConformance('createRedisStore (single node)', () => harness(connectRedis(), retention), stepOptions);
describeStepConformance('createRedisStore (ioredis keyPrefix "app:")', () => harness(connectRedis({ keyPrefix: 'app:' }), retention), stepOptions);

describeStoreConformance('createRedisStore (single node)', () => harness(connectRedis()), { lockTtlMs });

describeStoreConformance('createRedisStore (ioredis keyPrefix "app:")', () => harness(connectRedis({ keyPrefix: 'app:' })), {
  lockTtlMs,
});

describe.runIf(hasCluster())('on a 3-master cluster', () => {
  describeStoreConformance(
    'createRedisStore (Cluster)',
    async () => {
      const cluster = connectCluster();
      if (!cluster) throw new Error('no cluster');
      return harness(cluster);
    },
    { lockTtlMs },
  );
  describeStoreConformance(
    'createRedisStore (Cluster with keyPrefix "app:")',
    async () => {
      const cluster = connectCluster({ keyPrefix: 'app:' });
      if (!cluster) throw new Error('no cluster');
      return harness(cluster);
    },
    { lockTtlMs },
  );
  describeStepConformance(
    'createRedisStore (Cluster)',
    async () => {
      const cluster = connectCluster();
      if (!cluster) throw new Error('no cluster');
      return harness(cluster, retention);
    },
    stepOptions,
  );
});

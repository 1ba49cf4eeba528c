import { existsSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import type { ProvidedPostgres } from './postgresSetup';
import { findPostgres } from './postgresSetup';
import type { RedisCluster } from './redisCluster';
import { startRedisCluster } from './redisCluster';
import type { RedisServer } from './redisServer';
import { hasRedisServer, startRedisServer } from './redisServer';

/**
 * Finds Redis for the tests, in this order:
 *  1. `REDIS_URL` (and `REDIS_CLUSTER_NODES`, comma-separated host:port) when set;
 *  2. `redis-server` on the PATH: spawns a single node and a 3-master cluster on free ports (never 6379);
 *  3. a Docker engine: a `redis:7` container through testcontainers (`npm i -D testcontainers@11`), no cluster;
 *  4. otherwise every Redis test fails with `redisSetupError`, which says what to install.
 * Tests read the addresses with `inject('redis')`.
 */
export const setup = async (project: TestProject): Promise<void> => {
  const [found, postgres] = await Promise.all([findRedis(), findPostgres()]);
  stopAll = async () => {
    await Promise.all([found.stop(), postgres.stop()]);
  };
  project.provide('redis', found.redis);
  // PostgreSQL is found as Redis is: see findPostgres (test/helpers/postgresSetup.ts); read it with inject('postgres').
  project.provide('postgres', postgres.postgres);
};

export const teardown = async (): Promise<void> => {
  await stopAll();
};

export interface ProvidedRedis {
  /** `redis://host:port` of a single node, or null when none could be found. */
  url: string | null;
  /** `host:port` of each cluster master; empty when no cluster is available. */
  clusterNodes: string[];
  /** Whether tests can spawn their own `redis-server` (fault tests kill and stall it). */
  canSpawn: boolean;
  /** Why no Redis is available, and what to install. */
  setupError: string | null;
}

declare module 'vitest' {
  export interface ProvidedContext {
    redis: ProvidedRedis;
    postgres: ProvidedPostgres;
  }
}

// ---- internal helpers ----

let stopAll = async (): Promise<void> => {};

interface Found {
  redis: ProvidedRedis;
  stop(): Promise<void>;
}

const findRedis = async (): Promise<Found> => {
  const canSpawn = hasRedisServer();
  const url = process.env.REDIS_URL;
  if (url) {
    const clusterNodes = (process.env.REDIS_CLUSTER_NODES ?? '').split(',').filter(Boolean);
    return { redis: { url, clusterNodes, canSpawn, setupError: null }, stop: async () => {} };
  }
  if (canSpawn) {
    let single: RedisServer | undefined;
    let cluster: RedisCluster | undefined;
    try {
      single = await startRedisServer();
      cluster = await startRedisCluster();
    } catch (error) {
      await single?.stop();
      throw error;
    }
    const stop = async (): Promise<void> => {
      await Promise.all([single?.stop(), cluster?.stop()]);
    };
    return { redis: { url: single.url, clusterNodes: cluster.nodes, canSpawn, setupError: null }, stop };
  }
  if (dockerAvailable()) return startContainer();
  return {
    redis: {
      url: null,
      clusterNodes: [],
      canSpawn,
      setupError:
        'No Redis for the tests: install redis-server (Debian/Ubuntu: `apt-get install -y redis-server`, macOS: ' +
        '`brew install redis`), or set REDIS_URL (and REDIS_CLUSTER_NODES=host:port,host:port,host:port), or ' +
        'start a Docker engine and `npm i -D testcontainers@11`.',
    },
    stop: async () => {},
  };
};

const dockerAvailable = (): boolean => Boolean(process.env.DOCKER_HOST) || existsSync('/var/run/docker.sock');

/** Testcontainers, imported lazily and only on this path (it is not a dependency of the project). */
const startContainer = async (): Promise<Found> => {
  const moduleName = 'testcontainers';
  let testcontainers: { GenericContainer: new (image: string) => ContainerBuilder };
  try {
    testcontainers = (await import(moduleName)) as typeof testcontainers;
  } catch (error) {
    throw new Error('A Docker engine answers but testcontainers is missing: `npm i -D -E testcontainers@11`', {
      cause: error,
    });
  }
  const container = await new testcontainers.GenericContainer('redis:7').withExposedPorts(6379).start();
  const url = `redis://${container.getHost()}:${container.getMappedPort(6379)}`;
  return {
    redis: { url, clusterNodes: [], canSpawn: false, setupError: null },
    stop: async () => {
      await container.stop();
    },
  };
};

interface ContainerBuilder {
  withExposedPorts(port: number): ContainerBuilder;
  start(): Promise<{ getHost(): string; getMappedPort(port: number): number; stop(): Promise<unknown> }>;
}

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { RedisServer } from './redisServer';
import { startRedisServer } from './redisServer';

const run = promisify(execFile);

export interface RedisCluster {
  /** `host:port` of each master. */
  nodes: string[];
  servers: RedisServer[];
  stop(): Promise<void>;
}

/** Three masters, no replicas, made with `redis-cli --cluster create`; waits until every node says cluster_state:ok. */
export const startRedisCluster = async (): Promise<RedisCluster> => {
  const servers: RedisServer[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((server) => server.stop()));
  };
  try {
    for (let i = 0; i < 3; i++) {
      servers.push(
        await startRedisServer({
          clusterBus: true,
          args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'],
        }),
      );
    }
    const nodes = servers.map((server) => `${server.host}:${server.port}`);
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    const deadline = Date.now() + 20_000;
    for (const server of servers) {
      for (;;) {
        const { stdout } = await run('redis-cli', ['-h', server.host, '-p', String(server.port), 'cluster', 'info']);
        if (stdout.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`cluster node ${server.port} not ok: ${stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return { nodes, servers, stop };
  } catch (error) {
    await stop();
    throw error;
  }
};

import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import pg from 'pg';
import type { PostgresServer } from './postgresServer';
import { canSpawnPostgres, postgresAnswers, startPostgresServer } from './postgresServer';

export interface ProvidedPostgres {
  /** Connection string of the database the tests use, or null when none could be found. */
  url: string | null;
  /** This run's own schema in that database (created by the setup, dropped at teardown): tests make tables in it. */
  schema: string;
  /** Whether tests can spawn a private server (`initdb` and `postgres` found; outage tests stop and stall it). */
  canSpawn: boolean;
  /** Why no PostgreSQL is available, and what to install. */
  setupError: string | null;
}

export interface FoundPostgres {
  postgres: ProvidedPostgres;
  stop(): Promise<void>;
}

/**
 * Finds PostgreSQL for the tests, in this order:
 *  1. `DATABASE_URL`, or the `PG*` variables node-postgres reads (PGHOST, PGPORT, PGUSER, PGDATABASE...);
 *  2. a server on 127.0.0.1:5432 that answers as `postgres` in database `test` (trust authentication);
 *  3. `initdb` and `postgres` (`pg_config --bindir`): a private server on a free port;
 *  4. a Docker engine: a `postgres:16` container through testcontainers (`npm i -D testcontainers@11`);
 *  5. otherwise every PostgreSQL test fails with `setupError`, which says what to install.
 * Each run works in a schema of its own (`trpc_idem_run_<random>`), dropped with everything in it at teardown:
 * parallel runs and the database's other data are never touched.
 */
export const findPostgres = async (): Promise<FoundPostgres> => {
  try {
    return await findOrThrow();
  } catch (error) {
    // Redis tests still run; every PostgreSQL test fails with this.
    const reason = error instanceof Error ? error.message : String(error);
    return {
      postgres: { url: null, schema: '', canSpawn: false, setupError: `PostgreSQL setup failed: ${reason}` },
      stop: async () => {},
    };
  }
};

// ---- internal helpers ----

const findOrThrow = async (): Promise<FoundPostgres> => {
  const canSpawn = canSpawnPostgres();
  const schema = `trpc_idem_run_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const withSchema = async (url: string, stopServer: () => Promise<void>): Promise<FoundPostgres> => {
    await runSql(url, `CREATE SCHEMA ${schema}`);
    return {
      postgres: { url, schema, canSpawn, setupError: null },
      stop: async () => {
        await runSql(url, `DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
        await stopServer();
      },
    };
  };

  const fromEnv = process.env.DATABASE_URL || (hasPgVariables() ? pgUrlFromVariables() : undefined);
  if (fromEnv) return withSchema(fromEnv, async () => {});
  const local = 'postgres://postgres@127.0.0.1:5432/test';
  if (await postgresAnswers(local)) return withSchema(local, async () => {});
  if (canSpawn) {
    const server: PostgresServer = await startPostgresServer();
    return withSchema(server.url, () => server.stop());
  }
  if (dockerAvailable()) {
    const container = await startContainer();
    return withSchema(container.url, container.stop);
  }
  return {
    postgres: {
      url: null,
      schema,
      canSpawn,
      setupError:
        'No PostgreSQL for the tests: install PostgreSQL (Debian/Ubuntu: `apt-get install -y postgresql`, macOS: ' +
        '`brew install postgresql@16`), or set DATABASE_URL (or the PG* variables), or start a Docker engine and ' +
        '`npm i -D testcontainers@11`.',
    },
    stop: async () => {},
  };
};

const runSql = async (url: string, sql: string): Promise<void> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
};

const hasPgVariables = (): boolean => ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE'].some((name) => process.env[name]);

/** A URL of the PG* variables (a password, SSL settings and the like stay in the environment, where node-postgres reads them). */
const pgUrlFromVariables = (): string => {
  const { PGHOST = 'localhost', PGPORT = '5432', PGUSER = 'postgres', PGDATABASE = PGUSER } = process.env;
  const [user, database] = [encodeURIComponent(PGUSER), encodeURIComponent(PGDATABASE)];
  return PGHOST.startsWith('/')
    ? `postgres://${user}@localhost:${PGPORT}/${database}?host=${encodeURIComponent(PGHOST)}`
    : `postgres://${user}@${PGHOST}:${PGPORT}/${database}`;
};

const dockerAvailable = (): boolean => Boolean(process.env.DOCKER_HOST) || existsSync('/var/run/docker.sock');

/** Testcontainers, imported lazily and only on this path (it is not a dependency of the project). */
const startContainer = async (): Promise<{ url: string; stop(): Promise<void> }> => {
  const moduleName = 'testcontainers';
  let testcontainers: { GenericContainer: new (image: string) => ContainerBuilder };
  try {
    testcontainers = (await import(moduleName)) as typeof testcontainers;
  } catch (error) {
    throw new Error('A Docker engine answers but testcontainers is missing: `npm i -D -E testcontainers@11`', {
      cause: error,
    });
  }
  const container = await new testcontainers.GenericContainer('postgres:16')
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_DB: 'test' })
    .withExposedPorts(5432)
    .start();
  const url = `postgres://postgres@${container.getHost()}:${container.getMappedPort(5432)}/test`;
  // The image restarts the server once after its init scripts: wait until it answers for good.
  for (let i = 0; i < 100 && !(await postgresAnswers(url)); i++) await new Promise((resolve) => setTimeout(resolve, 200));
  return {
    url,
    stop: async () => {
      await container.stop();
    },
  };
};

interface ContainerBuilder {
  withEnvironment(env: Record<string, string>): ContainerBuilder;
  withExposedPorts(port: number): ContainerBuilder;
  start(): Promise<{ getHost(): string; getMappedPort(port: number): number; stop(): Promise<unknown> }>;
}

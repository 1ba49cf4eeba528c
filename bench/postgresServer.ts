import pg from 'pg';
import type { PostgresServer } from '../test/helpers/postgresServer';
import { canSpawnPostgres, startPostgresServer } from '../test/helpers/postgresServer';

/**
 * The bench's own PostgreSQL: `initdb` + `postgres` on a free port (the tests' helper, under root as the postgres
 * user), with pg_stat_statements preloaded so statements are counted on the server. Never the machine's 5432.
 */
export interface BenchPostgres {
  url: string;
  version: string;
  /** A connection for pg_stat_statements only, so stats reads never queue behind the load. */
  admin: pg.Client;
  stop(): Promise<void>;
}

/** Why PostgreSQL rows cannot run here, or undefined when they can. */
export const postgresUnavailable = (): string | undefined =>
  canSpawnPostgres()
    ? undefined
    : 'no PostgreSQL server binaries (initdb/postgres via pg_config --bindir), or root without a postgres user: ' +
      'PostgreSQL rows skipped (Debian/Ubuntu: apt-get install -y postgresql)';

export const startBenchPostgres = async (): Promise<BenchPostgres> => {
  const server: PostgresServer = await startPostgresServer({
    // track=top: a store call (SELECT fn(...)) counts once, not once per statement inside its PL/pgSQL.
    settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top', max_connections: '100' },
  });
  const admin = new pg.Client({ connectionString: server.url });
  admin.on('error', () => undefined); // shows up as a failed stats read instead
  await admin.connect();
  await admin.query('CREATE EXTENSION pg_stat_statements');
  const { rows } = await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v");
  return {
    url: server.url,
    version: rows[0]?.v ?? 'unknown',
    admin,
    // The server first: its SIGQUIT goes out synchronously, which a Ctrl-C handler relies on.
    stop: async () => {
      const stopped = server.stop();
      await admin.end().catch(() => undefined);
      await stopped;
    },
  };
};

/** Round trips and statements per call in one window. */
export interface PgCount {
  /** Queries the pool's connections sent (`client.query` calls): each one exchange, a round trip. */
  queriesPerCall: number;
  /** Statements PostgreSQL ran (pg_stat_statements, top level; several statements in one query string count apart). */
  statementsPerCall: number;
  /** Time PostgreSQL spent executing them per call, in µs (pg_stat_statements total_exec_time; planning excluded). */
  execUsPerCall: number;
  /** Statements by their first words (or the store function's name), raw deltas. */
  byStatement: Record<string, number>;
}

export interface PgMeter {
  /** Counts the queries of every connection `pool` opens from now on. */
  watch(pool: pg.Pool): void;
  start(): Promise<void>;
  stop(calls: number): Promise<PgCount>;
}

/**
 * Round trips counted on both sides: on the client, by wrapping `query` of each connection a watched pool opens
 * (node-postgres sends one query per exchange, no pipelining); on the server, by pg_stat_statements deltas.
 */
export const createPgMeter = (server: BenchPostgres): PgMeter => {
  let queries = 0;
  let before = new Map<string, StatementCount>();
  return {
    watch: (pool) => {
      pool.on('connect', (client) => {
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        client.query = ((...args: unknown[]) => {
          queries++;
          return query(...args);
        }) as typeof client.query;
      });
    },
    start: async () => {
      before = await statementCounts(server.admin);
      queries = 0;
    },
    stop: async (calls) => {
      const sent = queries;
      const after = await statementCounts(server.admin);
      let total = 0;
      let execMs = 0;
      const byStatement: Record<string, number> = {};
      for (const [text, { calls: n, ms }] of after) {
        const d = n - (before.get(text)?.calls ?? 0);
        if (d <= 0) continue;
        total += d;
        execMs += ms - (before.get(text)?.ms ?? 0);
        byStatement[text] = d;
      }
      const per = (n: number): number => (calls > 0 ? n / calls : 0);
      return { queriesPerCall: per(sent), statementsPerCall: per(total), execUsPerCall: per(execMs * 1000), byStatement };
    },
  };
};

// ---- internal helpers ----

interface StatementCount {
  calls: number;
  ms: number;
}

const statementCounts = async (admin: pg.Client): Promise<Map<string, StatementCount>> => {
  const { rows } = await admin.query<{ query: string; calls: string; ms: number }>(
    "SELECT query, calls::text, total_exec_time AS ms FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE 'SELECT current_setting%'",
  );
  const counts = new Map<string, StatementCount>();
  for (const { query, calls, ms } of rows) {
    const name = /(?:tx_)?(?:claim|complete|renew|release|step|peek|sweep)(?=_v1)/.exec(query)?.[0] ?? query.trim().split(/\s+/).slice(0, 2).join(' ').toUpperCase();
    const seen = counts.get(name);
    counts.set(name, { calls: (seen?.calls ?? 0) + Number(calls), ms: (seen?.ms ?? 0) + ms });
  }
  return counts;
};

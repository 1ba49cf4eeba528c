import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createCommandMeter } from './commands';
import { runPostgresSection } from './postgres';
import type { BenchPostgres } from './postgresServer';
import { createPgMeter, postgresUnavailable, startBenchPostgres } from './postgresServer';
import type { BenchRedis } from './redisServer';
import { startBenchRedis } from './redisServer';
import { machineInfo } from './report';
import type { SectionPlan, SectionRow } from './sections';
import { runStepsSection } from './steps';

/** The sections with tables of their own, after main.ts's table (or alone with `--only postgres|steps`). */
export const EXTRA_SECTIONS = ['postgres', 'steps'] as const;
export type ExtraSection = (typeof EXTRA_SECTIONS)[number];

export const isExtraSection = (name: string | undefined): name is ExtraSection => EXTRA_SECTIONS.includes(name as ExtraSection);

/**
 * Runs the PostgreSQL and/or step sections on servers of their own (a private PostgreSQL with pg_stat_statements,
 * a redis-server on a free port) and writes their rows to `postgres.json` / `steps.json` beside the main figures. Without the
 * PostgreSQL binaries the PostgreSQL rows are skipped with a message; the machine's own 5432 is never used.
 */
export const runExtraSections = async (sections: readonly ExtraSection[], opts: { quick: boolean; out: string }): Promise<void> => {
  const plan: SectionPlan = opts.quick ? { rounds: 5, windowMs: 100, warmupMs: 100 } : { rounds: 9, windowMs: 150, warmupMs: 150 };
  const skipped = postgresUnavailable();
  let postgres: BenchPostgres | undefined;
  let redisServer: BenchRedis | undefined;
  let redis: Redis | undefined;
  let stepsPool: pg.Pool | undefined;
  const results: Record<string, SectionRow[]> = {};
  // The private PostgreSQL runs in a process group of its own, so Ctrl-C does not reach it: stop it here (the
  // SIGQUIT goes out synchronously, before main.ts's handler exits the process).
  const onSigint = (): void => {
    void postgres?.stop();
    void redisServer?.stop();
    if (process.listenerCount('SIGINT') === 0) process.exit(130);
  };
  process.once('SIGINT', onSigint);
  try {
    if (skipped) console.log(`\nbench: ${skipped}`);
    else postgres = await startBenchPostgres();
    const pgMeter = postgres && createPgMeter(postgres);
    if (sections.includes('steps')) {
      try {
        redisServer = await startBenchRedis();
        redis = new Redis({ host: '127.0.0.1', port: redisServer.port, maxRetriesPerRequest: 1 });
        await redis.ping();
      } catch (error) {
        console.log(`\nbench: no redis-server (${error instanceof Error ? error.message : String(error)}): Redis step rows skipped`);
      }
    }
    const machine = machineInfo(redisServer?.version);
    console.log(
      `\nbench sections ${sections.join(', ')} (${opts.quick ? 'quick' : 'full'}): ${plan.rounds} rounds of ${plan.windowMs} ms windows per variant, interleaved\n` +
        `machine: ${machine.cpu}, ${machine.cores} cores, load ${machine.loadAvg.join(' ')}, Node ${machine.node}, ` +
        `Redis ${machine.redis}, PostgreSQL ${postgres?.version ?? 'not used'}`,
    );
    if (sections.includes('postgres') && postgres && pgMeter) results.postgres = await runPostgresSection(postgres, pgMeter, plan);
    if (sections.includes('steps')) {
      if (postgres && pgMeter) {
        stepsPool = new pg.Pool({ connectionString: postgres.url, max: 16 });
        stepsPool.on('error', () => undefined);
        pgMeter.watch(stepsPool);
      }
      results.steps = await runStepsSection(
        {
          redis: redis && redisServer ? { client: redis, meter: createCommandMeter(redisServer, redis) } : undefined,
          postgres: stepsPool && pgMeter ? { pool: stepsPool, meter: pgMeter } : undefined,
        },
        plan,
      );
    }
    // A file per section, so `--only steps` does not overwrite the PostgreSQL figures of an earlier run.
    mkdirSync(dirname(opts.out), { recursive: true });
    const date = new Date().toISOString();
    for (const [section, rows] of Object.entries(results)) {
      const out = join(dirname(opts.out), `${section}.json`);
      writeFileSync(out, `${JSON.stringify({ machine: { ...machine, postgres: postgres?.version ?? 'not used' }, plan, date, skipped, rows }, null, 2)}\n`);
      console.log(`${section} figures written to ${out}`);
    }
  } finally {
    process.off('SIGINT', onSigint);
    await stepsPool?.end().catch(() => undefined);
    redis?.disconnect();
    await redisServer?.stop();
    await postgres?.stop();
  }
};

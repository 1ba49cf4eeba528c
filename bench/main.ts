/**
 * The benchmark itself; `bench/run.ts` bundles it (with src/) and runs the bundle. See run.ts for the flags.
 * Variants run interleaved round by round; figures are medians over rounds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Redis } from 'ioredis';
import type { BenchApp, Scenario, StoreKind, Transport, Variant } from './app';
import { buildApp, procedurePath } from './app';
import type { CommandCount, CommandMeter } from './commands';
import { createCommandMeter } from './commands';
import type { CallFn, HttpTarget, Window } from './load';
import { inProcessCall, median, runWindow, startHttp } from './load';
import type { BenchRedis } from './redisServer';
import { startBenchRedis } from './redisServer';
import type { Row } from './report';
import { DEFAULT_OUT, checkTargets, formatTarget, machineInfo, printTable, rowId } from './report';
import type { ExtraSection } from './extraSections';
import { EXTRA_SECTIONS, isExtraSection, runExtraSections } from './extraSections';

const VARIANTS: readonly Variant[] = ['bare', 'ours', 'baseline'];
/** The variants of one cell: `cached` (ours with localCache) only where a cache can answer, Redis replays in-process. */
const variantsOf = (cell: Pick<Cell, 'store' | 'transport' | 'scenario'>): readonly Variant[] =>
  cell.store === 'redis' && cell.transport === 'in-process' && cell.scenario === 'replay' ? [...VARIANTS, 'cached'] : VARIANTS;
const CONCURRENCIES = [1, 64] as const;
const REPLAY_POOL = 256;

interface Cell {
  store: StoreKind;
  transport: Transport;
  scenario: Scenario;
  concurrency: number;
  calls: Record<Variant, CallFn>;
  keys: Record<Variant, (seq: number) => string>;
  app: BenchApp;
  variants: readonly Variant[];
}

interface Measured {
  window: Window;
  /** This process's CPU time per call (client loop included; for HTTP, client and server), in µs. */
  nodeCpuUs: number;
  /** redis-server CPU time per call, in µs (Redis rows only). */
  redisCpuUs?: number;
  commands?: CommandCount;
}

const main = async (): Promise<void> => {
  const args = parseArgs(process.argv.slice(2));
  // PostgreSQL and step rows: tables of their own (bench/extraSections.ts), after this one or alone.
  if (isExtraSection(args.only)) return runExtraSections([args.only], { quick: args.quick, out: args.out ?? DEFAULT_OUT });
  // Many short rounds rather than a few long ones: a burst of load from other processes then spoils a few
  // windows, which the medians drop. HTTP calls are ~40x slower than in-process ones, so their windows are longer.
  const plan = args.quick
    ? { rounds: 5, windowMs: 60, httpWindowMs: 120, warmupMs: 60 }
    : { rounds: 15, windowMs: 120, httpWindowMs: 240, warmupMs: 150 };
  const stores: StoreKind[] = args.only ? [args.only] : ['memory', 'redis'];

  let redisServer: BenchRedis | undefined;
  let redis: Redis | undefined;
  let meter: CommandMeter | undefined;
  const https: HttpTarget[] = [];
  const cleanup = async (): Promise<void> => {
    await Promise.all(https.map((h) => h.close()));
    redis?.disconnect();
    await redisServer?.stop();
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

  try {
    if (stores.includes('redis')) {
      redisServer = await startBenchRedis();
      redis = new Redis({ host: '127.0.0.1', port: redisServer.port, maxRetriesPerRequest: 1 });
      await redis.ping();
      meter = createCommandMeter(redisServer, redis);
    }
    const machine = machineInfo(redisServer?.version);
    console.log(
      `trpc-idempotency bench (${args.quick ? 'quick' : 'full'}): ${plan.rounds} rounds, windows of ${plan.windowMs} ms ` +
        `(HTTP ${plan.httpWindowMs} ms) per variant, interleaved\n` +
        `machine: ${machine.cpu}, ${machine.cores} cores, load ${machine.loadAvg.join(' ')}, Node ${machine.node}, Redis ${machine.redis}`,
    );

    let unique = 0;
    const runId = Date.now().toString(36);
    const cells: Cell[] = [];
    for (const store of stores) {
      for (const transport of ['in-process', 'http'] as const) {
        const app = buildApp({ store, transport, redis });
        let http: HttpTarget | undefined;
        if (transport === 'http') https.push((http = await startHttp(app, 64)));
        for (const scenario of ['fresh', 'replay'] as const) {
          for (const concurrency of CONCURRENCIES) {
            const cellId = cells.length;
            const calls = {} as Record<Variant, CallFn>;
            const keys = {} as Record<Variant, (seq: number) => string>;
            for (const variant of variantsOf({ store, transport, scenario })) {
              const path = procedurePath(variant, scenario);
              calls[variant] = http ? http.call(path) : inProcessCall(app, path);
              const fresh = (): string => `f.${runId}.${(unique++).toString(36)}`;
              if (scenario === 'fresh' || variant === 'bare') {
                keys[variant] = fresh;
              } else {
                const pool = Array.from({ length: REPLAY_POOL }, (_, i) => `r.${runId}.${cellId}.${variant}.${i}`);
                for (const key of pool) await calls[variant](key); // completes each key once
                keys[variant] = (seq) => pool[seq % REPLAY_POOL] as string;
              }
            }
            cells.push({ store, transport, scenario, concurrency, calls, keys, app, variants: variantsOf({ store, transport, scenario }) });
          }
        }
      }
    }

    const results = new Map<string, Measured[]>();
    const startedAt = Date.now();
    for (let round = -1; round < plan.rounds; round++) {
      const warmup = round < 0;
      for (const cell of cells) {
        // bare, ours, baseline, then ours, baseline, bare, ...: each variant takes each slot in turn.
        const { variants } = cell;
        const shift = warmup ? 0 : round % variants.length;
        for (let i = 0; i < variants.length; i++) {
          const variant = variants[(i + shift) % variants.length] as Variant;
          const measured = await measure(cell, variant, {
            durationMs: warmup ? plan.warmupMs : cell.transport === 'http' ? plan.httpWindowMs : plan.windowMs,
            meter,
          });
          if (warmup) continue;
          const id = rowId({ ...cell, variant });
          results.set(id, [...(results.get(id) ?? []), measured]);
        }
      }
      if (!warmup) process.stdout.write(`  round ${round + 1}/${plan.rounds} done (${((Date.now() - startedAt) / 1000).toFixed(0)} s)\n`);
    }

    const rows = summarize(cells, results);
    printTable(rows);
    const targets = checkTargets(rows);
    for (const target of targets) console.log(formatTarget(target));
    const failed = targets.filter((t) => t.status === 'FAIL');

    const out = args.out ?? DEFAULT_OUT;
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(
      out,
      `${JSON.stringify({ machine, mode: args.quick ? 'quick' : 'full', plan, date: new Date().toISOString(), rows, targets }, null, 2)}\n`,
    );
    console.log(`figures written to ${out}`);
    if (failed.length > 0 && args.check) process.exitCode = 1;
  } finally {
    await cleanup();
  }
  if (!args.only && args.sections) await runExtraSections(EXTRA_SECTIONS, { quick: args.quick, out: args.out ?? DEFAULT_OUT });
};

// ---- internal helpers ----

/** One window of one variant, with its correctness checked: replays must run nothing, fresh calls everything. */
const measure = async (cell: Cell, variant: Variant, opts: { durationMs: number; meter: CommandMeter | undefined }): Promise<Measured> => {
  const { durationMs, meter } = opts;
  const path = procedurePath(variant, cell.scenario);
  const ranBefore = cell.app.executions.get(path) ?? 0;
  const metered = cell.store === 'redis' ? meter : undefined;
  // Start every window with an empty young generation (run.ts passes --expose-gc), so a variant does not pay
  // for the previous window's short-lived garbage. A scavenge takes ~1 ms; a full collection would take ~30.
  (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc?.({ type: 'minor' });
  await metered?.start();
  const cpuBefore = process.cpuUsage();
  const window = await runWindow(cell.calls[variant], cell.keys[variant], { concurrency: cell.concurrency, durationMs });
  const cpu = process.cpuUsage(cpuBefore);
  const commands = await metered?.stop(window.ops);
  const nodeCpuUs = (cpu.user + cpu.system) / Math.max(1, window.ops);
  const ran = (cell.app.executions.get(path) ?? 0) - ranBefore;
  const expected = cell.scenario === 'replay' && variant !== 'bare' ? 0 : window.ops;
  if (ran !== expected) {
    throw new Error(`bench: ${path} (${cell.store}, ${cell.transport}) ran ${ran} times for ${window.ops} calls, expected ${expected}`);
  }
  return commands ? { window, nodeCpuUs, redisCpuUs: commands.redisCpuUs, commands } : { window, nodeCpuUs };
};

const summarize = (cells: Cell[], results: Map<string, Measured[]>): Row[] => {
  const rows: Row[] = [];
  for (const cell of cells) {
    const runs = (variant: Variant): Measured[] => results.get(rowId({ ...cell, variant })) ?? [];
    const ratio = (variant: Variant, other: Variant): number =>
      median(runs(variant).map((m, i) => m.window.opsPerSec / (runs(other)[i]?.window.opsPerSec ?? Number.NaN)));
    for (const variant of cell.variants) {
      const measured = runs(variant);
      const commands = measured.map((m) => m.commands).filter((c): c is CommandCount => c !== undefined);
      rows.push({
        scenario: cell.scenario,
        store: cell.store,
        transport: cell.transport,
        concurrency: cell.concurrency,
        variant,
        opsPerSec: median(measured.map((m) => m.window.opsPerSec)),
        p50Ms: median(measured.map((m) => m.window.p50Ms)),
        p99Ms: median(measured.map((m) => m.window.p99Ms)),
        vsBare: ratio(variant, 'bare'),
        vsBaseline: ratio(variant, 'baseline'),
        commandsPerCall: commands.length ? median(commands.map((c) => c.perCall)) : undefined,
        redisCommandsPerCall: commands.length ? median(commands.map((c) => c.totalPerCall)) : undefined,
        nodeCpuUsPerCall: median(measured.map((m) => m.nodeCpuUs)),
        redisCpuUsPerCall: commands.length ? median(commands.map((c) => c.redisCpuUs)) : undefined,
        rounds: measured.map((m) => ({ ...m.window, nodeCpuUs: m.nodeCpuUs, ...(m.commands ? { commands: m.commands } : {}) })),
      });
    }
  }
  return rows;
};

interface Args {
  quick: boolean;
  check: boolean;
  out: string | undefined;
  only: StoreKind | ExtraSection | undefined;
  /** `false` with `--no-sections`: the main table only (no PostgreSQL and step sections after it). */
  sections: boolean;
}

const parseArgs = (argv: string[]): Args => {
  const args: Args = { quick: false, check: true, out: undefined, only: undefined, sections: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') args.quick = true;
    else if (arg === '--no-check') args.check = false;
    else if (arg === '--no-sections') args.sections = false;
    else if (arg === '--out') {
      args.out = argv[++i];
      if (args.out === undefined || args.out.startsWith('--')) throw new Error('bench: --out takes a file name');
    }
    else if (arg === '--only') {
      const only = argv[++i];
      if (only !== 'memory' && only !== 'redis' && !isExtraSection(only)) throw new Error('bench: --only takes memory, redis, postgres or steps');
      args.only = only;
    } else throw new Error(`bench: unknown argument ${String(arg)} (use --quick, --no-check, --no-sections, --out FILE, --only memory|redis|postgres|steps)`);
  }
  return args;
};

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 2;
});

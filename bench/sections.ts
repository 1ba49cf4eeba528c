import { performance } from 'node:perf_hooks';
import type { Window } from './load';
import { median, quantile } from './load';

/**
 * The small harness of the PostgreSQL and step sections (`--only postgres`, `--only steps`): cells of variants
 * measured round by round with the starting variant rotating, as main.ts does for its table, and one table per
 * section whose ratios are medians of per-round ratios against the cell's reference variant.
 */

/** One window of one variant, its round trips counted where the store has them. */
export interface SectionMeasure {
  window: Window;
  /** This process's CPU time per call, in µs. */
  nodeCpuUs: number;
  /** Requests to the store per call: Redis commands the client sent, PostgreSQL queries the pool sent. */
  roundTrips?: number | undefined;
  /** PostgreSQL only: statements the server ran per call (pg_stat_statements). */
  statements?: number | undefined;
  /** PostgreSQL only: the server's execution time per call, in µs (pg_stat_statements). */
  dbUs?: number | undefined;
  /** What was counted, by command or statement. */
  detail?: Record<string, number> | undefined;
}

export interface SectionCell {
  /** Store, scenario and concurrency, as printed. */
  store: string;
  scenario: string;
  concurrency: number;
  variants: readonly string[];
  /** Ratios are taken against this variant. */
  reference: string;
  /** One window; throws when the window's executions are not what the scenario expects. */
  measure(variant: string, durationMs: number): Promise<SectionMeasure>;
}

export interface SectionRow {
  store: string;
  scenario: string;
  concurrency: number;
  variant: string;
  reference: string;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Median over rounds of ops/s over the reference's ops/s in the same round. */
  vsReference: number;
  roundTrips: number | undefined;
  statements: number | undefined;
  nodeCpuUsPerCall: number;
  /** PostgreSQL's execution time per call, in µs. */
  dbUsPerCall: number | undefined;
  detail: Record<string, number> | undefined;
}

export interface SectionPlan {
  rounds: number;
  windowMs: number;
  warmupMs: number;
}

export const runSection = async (cells: SectionCell[], plan: SectionPlan, title: string): Promise<SectionRow[]> => {
  const results = new Map<string, SectionMeasure[]>();
  const key = (cell: SectionCell, variant: string): string => `${cell.store}|${cell.scenario}|${cell.concurrency}|${variant}`;
  const startedAt = Date.now();
  for (let round = -1; round < plan.rounds; round++) {
    const warmup = round < 0;
    for (const cell of cells) {
      const shift = warmup ? 0 : round % cell.variants.length;
      for (let i = 0; i < cell.variants.length; i++) {
        const variant = cell.variants[(i + shift) % cell.variants.length] as string;
        (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc?.({ type: 'minor' });
        const measured = await cell.measure(variant, warmup ? plan.warmupMs : plan.windowMs);
        if (!warmup) results.set(key(cell, variant), [...(results.get(key(cell, variant)) ?? []), measured]);
      }
    }
    if (!warmup) process.stdout.write(`  ${title}: round ${round + 1}/${plan.rounds} done (${((Date.now() - startedAt) / 1000).toFixed(0)} s)\n`);
  }
  const rows: SectionRow[] = [];
  for (const cell of cells) {
    const runs = (variant: string): SectionMeasure[] => results.get(key(cell, variant)) ?? [];
    for (const variant of cell.variants) {
      const measured = runs(variant);
      const counted = <T>(pick: (m: SectionMeasure) => T | undefined): T[] => measured.map(pick).filter((v): v is T => v !== undefined);
      const roundTrips = counted((m) => m.roundTrips);
      const statements = counted((m) => m.statements);
      const dbUs = counted((m) => m.dbUs);
      rows.push({
        store: cell.store,
        scenario: cell.scenario,
        concurrency: cell.concurrency,
        variant,
        reference: cell.reference,
        opsPerSec: median(measured.map((m) => m.window.opsPerSec)),
        p50Ms: median(measured.map((m) => m.window.p50Ms)),
        p99Ms: median(measured.map((m) => m.window.p99Ms)),
        vsReference: median(measured.map((m, i) => m.window.opsPerSec / (runs(cell.reference)[i]?.window.opsPerSec ?? Number.NaN))),
        roundTrips: roundTrips.length ? median(roundTrips) : undefined,
        statements: statements.length ? median(statements) : undefined,
        nodeCpuUsPerCall: median(measured.map((m) => m.nodeCpuUs)),
        dbUsPerCall: dbUs.length ? median(dbUs) : undefined,
        detail: measured.at(-1)?.detail,
      });
    }
  }
  return rows;
};

export const printSectionTable = (title: string, rows: SectionRow[], note: string): void => {
  const header = ['store', 'scenario', 'conc', 'variant', 'ops/s', 'p50 ms', 'p99 ms', 'x ref', 'round trips', 'stmts', 'node us', 'db us'];
  const lines = rows.map((r) => [
    r.store,
    r.scenario,
    String(r.concurrency),
    r.variant,
    Math.round(r.opsPerSec).toLocaleString('en-US'),
    r.p50Ms.toFixed(3),
    r.p99Ms.toFixed(3),
    r.variant === r.reference ? 'ref' : r.vsReference.toFixed(2),
    r.roundTrips === undefined ? '-' : r.roundTrips.toFixed(2),
    r.statements === undefined ? '-' : r.statements.toFixed(2),
    r.nodeCpuUsPerCall.toFixed(1),
    r.dbUsPerCall === undefined ? '-' : r.dbUsPerCall.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const format = (cells: string[]): string => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ');
  console.log(`\n${title}\n\n${format(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  let previous = '';
  for (const [i, line] of lines.entries()) {
    const row = rows[i] as SectionRow;
    const group = `${row.store}|${row.scenario}|${row.concurrency}`;
    if (previous && group !== previous) console.log('');
    previous = group;
    console.log(format(line));
  }
  console.log(`\n${note}\n`);
};

/** A closed loop over a fixed list of keys (for keys that must be prepared before the window, one use each). */
export const runKeys = async (call: (key: string) => Promise<void>, keys: readonly string[], concurrency: number): Promise<Window> => {
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++] as string;
      const t0 = performance.now();
      await call(key);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - start;
  latencies.sort((a, b) => a - b);
  return { ops: latencies.length, opsPerSec: (latencies.length / elapsedMs) * 1000, p50Ms: quantile(latencies, 0.5), p99Ms: quantile(latencies, 0.99) };
};

/** Round trips of `variant` minus the reference's, in one cell (c=1, where nothing is batched); NaN when not counted. */
export const extraRoundTrips = (rows: SectionRow[], where: { store: string; scenario: string; variant: string }): { value: number; reference: number } => {
  const cell = rows.filter((r) => r.store === where.store && r.scenario === where.scenario && r.concurrency === 1);
  const value = cell.find((r) => r.variant === where.variant)?.roundTrips ?? Number.NaN;
  const reference = cell.find((r) => r.variant === r.reference)?.roundTrips ?? Number.NaN;
  return { value, reference };
};

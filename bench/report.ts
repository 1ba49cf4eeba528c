import { cpus, loadavg } from 'node:os';
import type { Scenario, StoreKind, Transport, Variant } from './app';
import type { CommandCount } from './commands';
import type { Window } from './load';

/** One line of the table: medians over rounds. */
export interface Row {
  scenario: Scenario;
  store: StoreKind;
  transport: Transport;
  concurrency: number;
  variant: Variant;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Median over rounds of this round's ops/s over bare's ops/s in the same round. */
  vsBare: number;
  vsBaseline: number;
  /** Redis commands sent per call (round trips); undefined for the memory store. */
  commandsPerCall: number | undefined;
  /** Everything Redis executed per call, Lua-internal commands included. */
  redisCommandsPerCall: number | undefined;
  /** This process's CPU per call in µs (the bench's client loop included). */
  nodeCpuUsPerCall: number;
  /** redis-server's CPU per call in µs. */
  redisCpuUsPerCall: number | undefined;
  rounds: (Window & { nodeCpuUs: number; commands?: CommandCount })[];
}

/** Where the JSON figures go unless `--out` says otherwise (relative to the repository root, where npm runs). */
export const DEFAULT_OUT = '.bench-out/results.json';

/** One table row's identity: scenario, store, transport, concurrency and variant. */
export const rowId = (r: Pick<Row, 'scenario' | 'store' | 'transport' | 'concurrency' | 'variant'>): string =>
  `${r.scenario}|${r.store}|${r.transport}|${r.concurrency}|${r.variant}`;

export const formatTarget = (target: Target): string => `${target.status.padEnd(4)} ${target.name}: ${target.detail}`;

export interface Target {
  name: string;
  status: 'PASS' | 'FAIL' | 'INFO';
  detail: string;
}

export const machineInfo = (redisVersion: string | undefined) => ({
  cpu: cpus()[0]?.model.trim() ?? 'unknown',
  cores: cpus().length,
  loadAvg: loadavg().map((l) => l.toFixed(2)),
  node: process.version,
  redis: redisVersion ?? 'not used',
  platform: `${process.platform} ${process.arch}`,
});

export const printTable = (rows: Row[]): void => {
  const header = ['scenario', 'store', 'transport', 'conc', 'variant', 'ops/s', 'p50 ms', 'p99 ms', 'x bare', 'x baseline', 'cmds/call', 'incl. Lua', 'node us', 'redis us'];
  const lines = rows.map((r) => [
    r.scenario,
    r.store,
    r.transport,
    String(r.concurrency),
    r.variant,
    Math.round(r.opsPerSec).toLocaleString('en-US'),
    r.p50Ms.toFixed(3),
    r.p99Ms.toFixed(3),
    r.vsBare.toFixed(2),
    r.vsBaseline.toFixed(2),
    r.commandsPerCall === undefined ? '-' : r.commandsPerCall.toFixed(2),
    r.redisCommandsPerCall === undefined ? '-' : r.redisCommandsPerCall.toFixed(2),
    r.nodeCpuUsPerCall.toFixed(1),
    r.redisCpuUsPerCall === undefined ? '-' : r.redisCpuUsPerCall.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const numeric = new Set([3, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  const format = (cells: string[]): string =>
    cells.map((c, i) => (numeric.has(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number))).join('  ');
  console.log(`\n${format(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  let previous = '';
  for (const [i, line] of lines.entries()) {
    const row = rows[i] as Row;
    const group = `${row.store}|${row.transport}|${row.scenario}`;
    if (previous && group !== previous) console.log('');
    previous = group;
    console.log(format(line));
  }
  console.log(
    '\nmedians over rounds; x bare / x baseline: median of per-round ops/s ratios; cmds/call: commands the client sent\n' +
      '(INFO commandstats); incl. Lua: everything Redis ran, script-internal commands included; node us / redis us: CPU\n' +
      'time per call of this process (bench client included) and of redis-server.\n',
  );
};

/** The targets, each checked on the figures above. */
export const checkTargets = (rows: Row[]): Target[] => {
  const targets: Target[] = [];
  const ours = (filter: Partial<Row>): Row[] =>
    rows.filter((r) => r.variant === 'ours' && Object.entries(filter).every(([k, v]) => r[k as keyof Row] === v));
  const label = (r: Row): string => `${r.scenario} ${r.store} ${r.transport} c=${r.concurrency}`;
  interface Check {
    name: string;
    subjects: Row[];
    value: (r: Row) => number | undefined;
    ok: (v: number) => boolean;
    unit: string;
  }
  const check = ({ name, subjects, value, ok, unit }: Check): void => {
    if (subjects.length === 0) return;
    const values = subjects.map((r) => ({ r, v: value(r) }));
    const pass = values.every(({ v }) => v !== undefined && ok(v));
    const detail = values.map(({ r, v }) => `${label(r)} ${v === undefined ? 'n/a' : v.toFixed(2)}${unit}`).join(', ');
    targets.push({ name, status: pass ? 'PASS' : 'FAIL', detail });
  };
  // Commands are counted exactly, so no tolerance beyond float noise.
  const commands = (r: Row): number | undefined => r.commandsPerCall;
  const vsBaseline = (r: Row): number => r.vsBaseline;
  check({
    name: 'redis: <= 2 commands per fresh call',
    subjects: ours({ store: 'redis', scenario: 'fresh' }),
    value: commands,
    ok: (v) => v <= 2.001,
    unit: '',
  });
  check({ name: 'redis: <= 1 command per replay', subjects: ours({ store: 'redis', scenario: 'replay' }), value: commands, ok: (v) => v <= 1.001, unit: '' });
  check({
    name: 'fresh in-process c=64 (redis): >= 1.15x baseline ops/s',
    subjects: ours({ store: 'redis', transport: 'in-process', scenario: 'fresh', concurrency: 64 }),
    value: vsBaseline,
    ok: (v) => v >= 1.15,
    unit: 'x',
  });
  check({
    name: 'replay in-process c=64 (redis): >= 1.00x baseline ops/s',
    subjects: ours({ store: 'redis', transport: 'in-process', scenario: 'replay', concurrency: 64 }),
    value: vsBaseline,
    ok: (v) => v >= 1,
    unit: 'x',
  });
  check({
    name: 'fresh in-process c=1 (redis): >= 1.10x baseline ops/s',
    subjects: ours({ store: 'redis', transport: 'in-process', scenario: 'fresh', concurrency: 1 }),
    value: vsBaseline,
    ok: (v) => v >= 1.1,
    unit: 'x',
  });
  check({
    name: 'replay in-process c=1 (redis): >= 1.00x baseline ops/s',
    subjects: ours({ store: 'redis', transport: 'in-process', scenario: 'replay', concurrency: 1 }),
    value: vsBaseline,
    ok: (v) => v >= 1,
    unit: 'x',
  });
  // The baseline of the memory rows is the same hand-rolled middleware on a Map, measured in the same rounds.
  check({
    name: 'memory store over HTTP: >= 0.95x baseline (on a Map) ops/s',
    subjects: ours({ store: 'memory', transport: 'http' }),
    value: vsBaseline,
    ok: (v) => v >= 0.95,
    unit: 'x',
  });
  for (const r of ours({ store: 'memory', transport: 'http' })) {
    targets.push({ name: `reference: ${label(r)} vs bare`, status: 'INFO', detail: `${r.vsBare.toFixed(2)}x bare` });
  }
  // Not a target of the issue (its baseline is the Redis seed), shown for reference.
  for (const r of ours({ store: 'memory', transport: 'in-process', concurrency: 64 })) {
    targets.push({ name: `reference: ${label(r)} vs the Map baseline`, status: 'INFO', detail: `${r.vsBaseline.toFixed(2)}x baseline, ${r.vsBare.toFixed(2)}x bare` });
  }
  // Replays answered by the local cache (localCache on, no Redis round trip) against Redis replays without it and
  // against the memory store's replays (medians of different cells: the memory cell runs seconds apart).
  for (const r of rows.filter((x) => x.variant === 'cached')) {
    const memory = ours({ store: 'memory', transport: r.transport, scenario: 'replay', concurrency: r.concurrency })[0];
    const uncached = ours({ store: 'redis', transport: r.transport, scenario: 'replay', concurrency: r.concurrency })[0];
    const vs = (other: Row | undefined, what: string): string =>
      other ? `, ${(r.opsPerSec / other.opsPerSec).toFixed(2)}x ${what} (${Math.round(other.opsPerSec).toLocaleString('en-US')}/s)` : '';
    targets.push({
      name: `reference: replay redis ${r.transport} c=${r.concurrency} with localCache`,
      status: 'INFO',
      detail:
        `${Math.round(r.opsPerSec).toLocaleString('en-US')}/s, ${r.vsBaseline.toFixed(2)}x baseline` +
        `${vs(uncached, 'without the cache')}${vs(memory, "the memory store's replays")}`,
    });
  }
  return targets;
};

/**
 * `--repeat N`: the bench run in N processes, one after another, merged. Each process's JIT settles on its own
 * code for ours and for bare, and two processes of the same code can differ by ±7% in `x bare` over HTTP (the
 * rounds inside one process do not average that out). The merged row takes, per figure, the median over
 * processes of each process's median; the targets are checked on the merged rows, and each process's own
 * `x baseline` and `x bare` for the memory store over HTTP are listed, so the spread shows.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { median } from './load';
import type { Row, Target } from './report';
import { checkTargets, formatTarget, printTable, rowId } from './report';

interface RunFile {
  machine: unknown;
  rows: Row[];
}

const medianOf = (rows: Row[], pick: (r: Row) => number | undefined): number | undefined => {
  const values = rows.map(pick).filter((v): v is number => v !== undefined);
  return values.length ? median(values) : undefined;
};

const mergeRows = (group: Row[]): Row => {
  const first = group[0] as Row;
  return {
    ...first,
    opsPerSec: medianOf(group, (r) => r.opsPerSec) as number,
    p50Ms: medianOf(group, (r) => r.p50Ms) as number,
    p99Ms: medianOf(group, (r) => r.p99Ms) as number,
    vsBare: medianOf(group, (r) => r.vsBare) as number,
    vsBaseline: medianOf(group, (r) => r.vsBaseline) as number,
    commandsPerCall: medianOf(group, (r) => r.commandsPerCall),
    redisCommandsPerCall: medianOf(group, (r) => r.redisCommandsPerCall),
    nodeCpuUsPerCall: medianOf(group, (r) => r.nodeCpuUsPerCall) as number,
    redisCpuUsPerCall: medianOf(group, (r) => r.redisCpuUsPerCall),
    rounds: group.flatMap((r) => r.rounds),
  };
};

/** Merges the runs' JSON files, prints the merged table and targets, writes the merged JSON; the failed targets. */
export const mergeRuns = (files: string[], out: string): Target[] => {
  const runs = files.map((file) => JSON.parse(readFileSync(file, 'utf8')) as RunFile);
  const groups = new Map<string, Row[]>();
  for (const run of runs) for (const row of run.rows) groups.set(rowId(row), [...(groups.get(rowId(row)) ?? []), row]);
  const rows = [...groups.values()].map(mergeRows);

  console.log(`\n=== merged over ${runs.length} processes (per figure: the median of the processes' medians)`);
  printTable(rows);
  for (const [id, group] of groups) {
    const row = group[0] as Row;
    if (row.variant !== 'ours' || row.store !== 'memory' || row.transport !== 'http') continue;
    const each = (pick: (r: Row) => number): string => group.map((r) => pick(r).toFixed(2)).join(' ');
    console.log(`per process: ${id.replaceAll('|', ' ')}: x baseline ${each((r) => r.vsBaseline)}, x bare ${each((r) => r.vsBare)}`);
  }
  const targets = checkTargets(rows);
  for (const target of targets) console.log(formatTarget(target));
  writeFileSync(out, `${JSON.stringify({ machine: runs[0]?.machine, mode: `merged over ${runs.length} processes`, files, rows, targets }, null, 2)}\n`);
  console.log(`figures written to ${out}`);
  return targets.filter((t) => t.status === 'FAIL');
};

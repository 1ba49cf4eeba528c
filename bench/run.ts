/**
 * `npm run bench`: trpc-idempotency against a bare procedure and a seed-style hand-rolled middleware
 * (bench/baseline.ts), in-process and over HTTP, memory store and Redis (its own redis-server), fresh keys and
 * replays, at concurrency 1 and 64.
 *
 *   npm run bench                   full run (~2-3 min)
 *   npm run bench -- --quick        ~30 s
 *   npm run bench -- --no-check     print PASS/FAIL but always exit 0
 *   npm run bench -- --out FILE     where the JSON goes (default .bench-out/results.json)
 *   npm run bench -- --only memory  only the memory-store rows (or --only redis)
 *   npm run bench -- --only postgres  only the PostgreSQL rows (or --only steps: durable steps); a full run ends with both
 *   npm run bench -- --no-sections    the memory and Redis table only, without those two sections
 *   npm run bench -- --tsx          run the sources through tsx instead of a bundle (slower, see below)
 *   npm run bench -- --repeat N     N processes one after another, merged (see merge.ts); verdicts on the merge
 *
 * By default bench/main.ts and src/ are bundled with esbuild into .bench-out/ and run with plain node, as a
 * tsup build would run in production: tsx compiles with keepNames, which wraps every closure the middleware
 * creates per call in a `__name()` call and cost ours 2.5-7 us per call in a profile (the baseline, with
 * fewer closures, much less). Packages (@trpc/server, ioredis, superjson) stay external.
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { mergeRuns } from './merge';
import { DEFAULT_OUT } from './report';

const here = dirname(fileURLToPath(import.meta.url));
const { value: repeatArg, rest: args } = takeFlag(process.argv.slice(2), '--repeat');
const repeat = repeatArg === undefined ? 1 : Number(repeatArg);

const run = async (): Promise<number> => {
  const main = join(here, 'main.ts');
  if (args.includes('--tsx')) {
    if (repeat > 1) throw new Error('bench: --repeat runs the bundle; it does not combine with --tsx');
    return exec(process.execPath, [...process.execArgv, '--expose-gc', main, ...args.filter((a) => a !== '--tsx')]);
  }
  const outfile = join(here, '..', '.bench-out', 'bench.mjs');
  mkdirSync(dirname(outfile), { recursive: true });
  await build({
    entryPoints: [main],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  });
  const node = ['--enable-source-maps', '--expose-gc', outfile];
  if (repeat === 1) return exec(process.execPath, [...node, ...args]);
  const { value: out = DEFAULT_OUT, rest } = takeFlag(args, '--out');
  const files: string[] = [];
  for (let i = 1; i <= repeat; i++) {
    console.log(`\n=== process ${i} of ${repeat}`);
    const file = join(dirname(out), `run-${i}.json`);
    const code = await exec(process.execPath, [...node, ...rest, '--no-check', '--out', file]);
    if (code !== 0) return code;
    files.push(file);
  }
  const failed = mergeRuns(files, out);
  return failed.length > 0 && !args.includes('--no-check') ? 1 : 0;
};

/** Removes `name` and the value after it from `argv`; a flag given without a value is an error. */
function takeFlag(argv: string[], name: string): { value: string | undefined; rest: string[] } {
  const at = argv.indexOf(name);
  if (at < 0) return { value: undefined, rest: argv };
  const value = argv[at + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`bench: ${name} takes a value`);
  return { value, rest: [...argv.slice(0, at), ...argv.slice(at + 2)] };
}

const exec = (command: string, argv: string[]): Promise<number> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });

run().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 2;
  },
);

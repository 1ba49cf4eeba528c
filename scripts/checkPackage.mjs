#!/usr/bin/env node
// Checks the package as npm would publish it: `npm pack` (whose prepack runs the build), then
//   1. the tarball holds every entry's ESM, CJS and both type files, a node10 folder per subpath entry
//      (scripts/entryStubs.mjs), LICENSE, README.md, CHANGELOG.md and docs/, and no tests;
//   2. publint (strict) finds nothing;
//   3. attw (@arethetypeswrong/cli, profile strict: node10, node16 from CJS and from ESM, bundler) finds nothing;
//   4. every entry of the unpacked tarball loads as ESM and as CJS and exposes what the README promises.
// Usage: node scripts/checkPackage.mjs   (`npm run check:package`; .ci/run runs it)
// A new entry (`./postgres`, `./testing`, `./otel`): add it to `exports` and `files` in package.json and to
// tsup.config.ts, then list what it must export in `expected` below; the rest follows from `exports`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';
import { subpathEntries } from './entryStubs.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const work = join(root, '.tmp/pack');

/** What each entry must export (the names the README and docs use). */
const expected = {
  '.': ['createIdempotency', 'idempotent', 'createMemoryStore', 'idempotencyResponseMeta', 'idempotencyErrorData', 'IdempotencyError'],
  './redis': ['createRedisStore'],
  './postgres': ['createPostgresStore', 'createPostgresTable', 'postgresTableSql'],
  './client': ['idempotencyLink', 'idempotencyHeaders', 'idempotentRetry'],
  './otel': ['createOtelObserver', 'METRIC', 'ATTR'],
  './testing': ['describeStoreConformance', 'createManualClock', 'resetIdempotentStore'],
};

/**
 * Entries that load only as ESM because what they import does: vitest throws on `require('vitest')` ("Vitest cannot
 * be imported in a CommonJS module using require()"), and vitest itself always loads packages as ESM. Their CJS
 * build exists (for the types under node10/node16-CJS) and must fail with exactly that message, not another.
 */
const esmOnlyAtRuntime = { './testing': /Vitest cannot be imported in a CommonJS module/ };

const failures = [];
const check = (ok, message) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${message}`);
  if (!ok) failures.push(message);
};
const run = (command, args, options = {}) => {
  const result = spawnSync(command, args, { cwd: root, encoding: 'utf8', ...options });
  if (result.error) throw result.error;
  return result;
};

// --- pack (prepack builds dist/ and the entry folders) ---
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const started = Date.now();
const packed = run('npm', ['pack', '--json', '--pack-destination', work]);
if (packed.status !== 0) {
  console.error(packed.stdout, packed.stderr);
  throw new Error('npm pack failed');
}
// prepack's build writes to stdout too (tsup's log, in colour under CI: its escape codes hold '['): the JSON is
// the array that starts a line with '[' followed by '{'.
const json = /^\[\s*\{/m.exec(packed.stdout);
if (!json) throw new Error(`npm pack printed no JSON:\n${packed.stdout}`);
const [{ filename, files, size, unpackedSize }] = JSON.parse(packed.stdout.slice(json.index));
const tarball = join(work, filename);
const paths = new Set(files.map((file) => file.path));
console.log(`packed ${filename}: ${files.length} files, ${(size / 1024).toFixed(1)} kB (${(unpackedSize / 1024).toFixed(0)} kB unpacked) in ${((Date.now() - started) / 1000).toFixed(1)} s`);

// --- 1. contents ---
for (const [subpath, target] of Object.entries(pkg.exports)) {
  if (typeof target !== 'object') continue;
  for (const file of [target.import.default, target.import.types, target.require.default, target.require.types]) {
    check(paths.has(file.replace(/^\.\//, '')), `tarball has ${file} (${subpath})`);
  }
  check(subpath in expected, `${subpath} has a list of expected exports in scripts/checkPackage.mjs`);
}
for (const { name } of subpathEntries(pkg.exports)) {
  check(pkg.files.includes(name), `package.json files lists the entry folder ${name}/`);
  check(paths.has(`${name}/package.json`), `tarball has ${name}/package.json (node10 resolvers)`);
}
for (const file of ['LICENSE', 'README.md', 'CHANGELOG.md', 'docs/client.md']) check(paths.has(file), `tarball has ${file}`);
const stray = [...paths].filter((path) => /(^|\/)test\/|\.test\.ts$|^examples\/|^bench\//.test(path));
check(stray.length === 0, `tarball has no tests, examples or benchmarks${stray.length ? `: ${stray.join(', ')}` : ''}`);

// --- unpack where an app's node_modules would hold it (its dependencies resolve from this repository's) ---
const installed = join(work, 'node_modules', pkg.name);
mkdirSync(installed, { recursive: true });
const untar = run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
check(untar.status === 0, `unpacked into ${installed}`);

// --- 2. publint (on the unpacked files: exactly what was packed) ---
const { messages } = await publint({ pkgDir: installed, strict: true, pack: false });
for (const message of messages) console.log(`     publint ${message.type}: ${formatMessage(message, pkg)}`);
check(messages.length === 0, 'publint (strict) reports nothing');

// --- 3. attw ---
const attw = run(join(root, 'node_modules/.bin/attw'), [tarball, '--profile', 'strict', '--format', 'table-flipped', '--no-color']);
if (attw.status !== 0) console.log(attw.stdout, attw.stderr);
check(attw.status === 0, 'attw (node10, node16 CJS and ESM, bundler) reports nothing');

// --- 4. load the unpacked package as an app would ---
const require = createRequire(join(work, 'app.cjs'));
for (const [subpath, names] of Object.entries(expected)) {
  const specifier = subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`;
  const loaders = {
    esm: () => import(pathToFileURL(require.resolve(specifier).replace(/\.cjs$/, '.js')).href),
    cjs: async () => require(specifier),
  };
  for (const [kind, load] of Object.entries(loaders)) {
    const refusal = kind === 'cjs' ? esmOnlyAtRuntime[subpath] : undefined;
    if (refusal) {
      const error = await load().then(() => undefined, (thrown) => thrown);
      check(refusal.test(String(error?.message)), `${kind} ${specifier} is refused by vitest (ESM only)`);
      continue;
    }
    try {
      const mod = await load();
      const missing = names.filter((name) => !(name in mod));
      check(missing.length === 0, `${kind} ${specifier}${missing.length ? `: missing ${missing.join(', ')}` : ''}`);
    } catch (error) {
      check(false, `${kind} ${specifier}: ${error instanceof Error ? error.message : error}`);
    }
  }
}

console.log(failures.length ? `\n${failures.length} package check(s) failed` : '\npackage checks passed');
process.exit(failures.length ? 1 : 0);

#!/usr/bin/env node
// Writes one folder per subpath entry (`redis/package.json`, `client/package.json`, ...) pointing into dist/,
// for resolvers that ignore the exports map: TypeScript's `moduleResolution: node10` (alias `node`) and old
// bundlers and test runners. Node and modern tools read `exports` and never look here (tRPC ships the same).
// The entries come from package.json `exports`, so a new entry needs no change here; its folder must be listed in
// `files` (scripts/checkPackage.mjs fails when it is not). The folders are build output (.gitignore).
// Usage: node scripts/entryStubs.mjs   (run by `npm run build`)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** Subpath entries with code: `./redis` -> `redis`; the root and `./package.json` need no folder. */
export const subpathEntries = (exportsMap) =>
  Object.entries(exportsMap)
    .filter(([subpath, target]) => subpath !== '.' && typeof target === 'object')
    .map(([subpath, target]) => ({ name: subpath.slice(2), target }));

const fromStub = (path) => `../${path.replace(/^\.\//, '')}`;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const { name, target } of subpathEntries(pkg.exports)) {
    const stub = {
      main: fromStub(target.require.default),
      module: fromStub(target.import.default),
      // node10 resolution is CommonJS resolution: the types of the require condition.
      types: fromStub(target.require.types),
    };
    mkdirSync(join(root, name), { recursive: true });
    writeFileSync(join(root, name, 'package.json'), `${JSON.stringify(stub)}\n`);
    console.log(`entry stub ${name}/package.json -> ${stub.main}`);
  }
}

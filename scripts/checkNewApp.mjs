#!/usr/bin/env node
// The README as a new user follows it: installs the packed tarball into a new app outside the repository,
// writes the README's Quick start `server.ts` and `client.ts` word for word, type-checks them strictly (NodeNext,
// as a Node ESM app), starts the server and runs the client twice with one key through curl-like fetches.
// The only change to the README's code is the port (3000 -> a free one), so it can run next to anything else.
// Usage: node scripts/checkNewApp.mjs [tarball]   (default: the one scripts/checkPackage.mjs left in .tmp/pack)
// Needs the npm registry or a warm npm cache for @trpc/*, superjson, zod, typescript, tsx.
/* global fetch */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const packDir = join(root, '.tmp/pack');
const tarball = resolve(process.argv[2] ?? join(packDir, readdirSync(packDir).find((name) => name.endsWith('.tgz'))));
const started = Date.now();
const step = (message) => console.log(`${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s  ${message}`);

const run = (command, args, cwd) => {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
};
const freePort = () =>
  new Promise((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
const block = (title) => {
  const match = new RegExp(`\`\`\`ts title="${title}"\\n([\\s\\S]*?)\\n\`\`\``).exec(readFileSync(join(root, 'README.md'), 'utf8'));
  if (!match) throw new Error(`README.md has no \`\`\`ts title="${title}" block`);
  return `${match[1]}\n`;
};

const app = mkdtempSync(join(tmpdir(), 'trpc-idempotency-newapp-'));
let server;
try {
  // Versions of what the app adds are the repository's own, so the check is repeatable.
  const dev = pkg.devDependencies;
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'newapp', private: true, type: 'module' }));
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, `@trpc/server@${dev['@trpc/server']}`,
    `@trpc/client@${dev['@trpc/client']}`, `superjson@${pkg.dependencies.superjson}`, `zod@${dev.zod}`], app);
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '-D', `typescript@${dev.typescript}`,
    `tsx@${dev.tsx}`, `@types/node@${dev['@types/node']}`], app);
  step(`installed ${tarball} into ${app}`);

  const port = await freePort();
  for (const title of ['server.ts', 'client.ts']) writeFileSync(join(app, title), block(title).replaceAll('3000', String(port)));
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', noEmit: true, types: ['node'] },
    include: ['*.ts'],
  }));
  run(join(app, 'node_modules/.bin/tsc'), ['-p', '.'], app);
  step('tsc --strict (NodeNext) accepts server.ts and client.ts');

  server = spawn(join(app, 'node_modules/.bin/tsx'), ['server.ts'], { cwd: app, stdio: 'inherit' });
  const url = `http://localhost:${port}/createOrder`;
  const post = () =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'order-1' }, body: '{"json":{"item":"book"}}' });
  let first;
  for (let attempt = 0; !first; attempt++) {
    first = await post().catch(async (error) => {
      if (attempt > 150) throw error;
      await new Promise((wake) => setTimeout(wake, 100));
    });
  }
  const second = await post();
  const [a, b] = [await first.json(), await second.json()];
  if (JSON.stringify(a) !== JSON.stringify(b) || second.headers.get('idempotent-replayed') !== 'true') {
    throw new Error(`the same key twice was not replayed: ${JSON.stringify(a)} / ${JSON.stringify(b)}`);
  }
  step('the Quick start server replays a second call with the same key (Idempotent-Replayed: true)');

  const client = run(join(app, 'node_modules/.bin/tsx'), ['client.ts'], app);
  if (!/^2 true [0-9a-f-]{36} false\n$/.test(client)) throw new Error(`client.ts printed ${JSON.stringify(client)}`);
  step(`client.ts runs: ${client.trim()}`);
  console.log('new app check passed');
} finally {
  server?.kill();
  rmSync(app, { recursive: true, force: true });
}

// Checks the built package as a user gets it: every entry loads through its exports map, as ESM and as CJS,
// and exposes what the README promises. Run after `npm run build`.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const expected = {
  'trpc-idempotency': ['createIdempotency', 'idempotent', 'createMemoryStore', 'idempotencyResponseMeta', 'idempotencyErrorData', 'IdempotencyError'],
  'trpc-idempotency/redis': ['createRedisStore'],
  'trpc-idempotency/postgres': ['createPostgresStore', 'createPostgresTable', 'postgresTableSql'],
  'trpc-idempotency/client': ['idempotencyLink', 'idempotencyHeaders', 'idempotentRetry'],
};

let failed = false;
for (const [entry, names] of Object.entries(expected)) {
  for (const [kind, load] of [['esm', () => import(entry)], ['cjs', async () => require(entry)]]) {
    try {
      const mod = await load();
      const missing = names.filter((n) => !(n in mod));
      if (missing.length) throw new Error(`missing exports: ${missing.join(', ')}`);
      if ('default' in mod && kind === 'esm' && Object.keys(mod).length === 1) throw new Error('only a default export');
      console.log(`ok   ${kind} ${entry}`);
    } catch (error) {
      failed = true;
      console.error(`FAIL ${kind} ${entry}: ${error instanceof Error ? error.message : error}`);
    }
  }
}
process.exit(failed ? 1 : 0);

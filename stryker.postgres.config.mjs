// @ts-check
import base from './stryker.config.mjs';

/**
 * The PostgreSQL store in store mode (src/stores/postgres/ except transaction.ts, which
 * stryker.transactional.config.mjs covers) against only the tests that run it (vitest.postgres.config.ts, on real
 * PostgreSQL: the global setup finds or spawns it and gives the run its own schema), one file at a time, e.g.
 * `npm run test:mutation -- stryker.postgres.config.mjs --mutate src/stores/postgres/replies.ts`.
 * Give each file its own incremental file (`--incrementalFile reports/stryker-incremental-postgres-<file>.json`)
 * when re-running with `--incremental`; add `--force` after adding a test file.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  ...base,
  mutate: [
    'src/stores/postgres/*.ts',
    '!src/stores/postgres/transaction.ts',
    '!src/stores/postgres/index.ts',
  ],
  vitest: { configFile: 'vitest.postgres.config.ts', related: false },
  // Stryker's default puts `// @ts-nocheck` atop every src file in the sandbox, which makes the generated
  // sqlFiles.ts differ from what scripts/genSql.mjs renders, so its freshness test (options.test.ts) fails the dry
  // run. Not needed here: vitest strips types without checking them.
  disableTypeChecks: false,
  htmlReporter: { fileName: 'reports/mutation-postgres/index.html' },
  jsonReporter: { fileName: 'reports/mutation-postgres/mutation.json' },
  incrementalFile: 'reports/stryker-incremental-postgres.json',
};

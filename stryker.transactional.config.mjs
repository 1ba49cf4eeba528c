// @ts-check
import base from './stryker.config.mjs';

/**
 * The PostgreSQL transactional mode (src/stores/postgres/transaction.ts, src/server/transactional.ts) against only
 * the tests that run it (vitest.transactional.config.ts, on real PostgreSQL: the global setup finds or spawns it
 * and gives the run its own schema), one file at a time, e.g.
 * `npm run test:mutation -- stryker.transactional.config.mjs --mutate src/stores/postgres/transaction.ts`.
 * Add `--incremental` to re-test only the mutants whose code or covering tests changed since the last run.
 * transactionalProcesses.e2e.test.ts is left out: it runs the app in child processes, where no mutant is switched
 * on and no coverage is seen.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  ...base,
  vitest: { configFile: 'vitest.transactional.config.ts', related: false },
  htmlReporter: { fileName: 'reports/mutation-transactional/index.html' },
  jsonReporter: { fileName: 'reports/mutation-transactional/mutation.json' },
  incrementalFile: 'reports/stryker-incremental-transactional.json',
};

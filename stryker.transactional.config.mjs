// @ts-check
import base from './stryker.config.mjs';

/**
 * The PostgreSQL transactional mode (src/stores/postgres/transaction.ts, src/server/transactional.ts) against only
 * the tests that run it (vitest.transactional.config.ts, on real PostgreSQL: the global setup finds or spawns it
 * and gives the run its own schema), one file at a time, e.g.
 * `npm run test:mutation -- stryker.transactional.config.mjs --mutate src/stores/postgres/transaction.ts`.
 * Measured on a loaded 2-core machine: about 23 minutes for transaction.ts (214 mutants, half of them static, which
 * run every test) and 10 for transactional.ts (204). Add `--incremental` to re-test only the mutants whose code or
 * covering tests changed; the measurements gave each file an incremental file of its own
 * (`--incrementalFile reports/stryker-incremental-transactional-<file>.json`). Add `--force` after adding a test
 * file: Stryker 9.6 reused the static mutants' old verdicts without running the new tests.
 * transactionalProcesses.e2e.test.ts is left out: it runs the app in child processes, where no mutant is switched
 * on and no coverage is seen, and it asserts nothing the in-process tests do not.
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

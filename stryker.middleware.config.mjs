// @ts-check
import base from './stryker.config.mjs';

/**
 * The middleware (src/server/middleware.ts) against only the tests that cover it (vitest.middleware.config.ts: the
 * server suite on the memory store), e.g.
 * `npm run test:mutation -- stryker.middleware.config.mjs --mutate src/server/middleware.ts`: about 8.5 minutes
 * for its 143 mutants on a loaded 2-core machine (a 50 s dry run of the ~590 server tests included). Add
 * `--incremental` to re-test only the mutants whose code or covering tests changed since the last incremental
 * run (reports/stryker-incremental-middleware.json): about 4 minutes after a change to four test files. The
 * transactional mode's PostgreSQL tests are not needed: test/server/middleware.behaviour.test.ts routes a
 * transactional procedure through a fake transactional store.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  ...base,
  vitest: { configFile: 'vitest.middleware.config.ts', related: false },
  htmlReporter: { fileName: 'reports/mutation-middleware/index.html' },
  jsonReporter: { fileName: 'reports/mutation-middleware/mutation.json' },
  incrementalFile: 'reports/stryker-incremental-middleware.json',
};

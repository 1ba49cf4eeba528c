// @ts-check
import base from './stryker.config.mjs';

/**
 * The server's safety-critical files (key, resolveKey, fingerprint, inputBudget, keyedCall, finish, lease) and the
 * client's retry policy (src/client/idempotentRetry.ts) against only the tests in test/server and test/client
 * (vitest.server.config.ts), e.g.
 * `npm run test:mutation -- stryker.server.config.mjs --mutate src/server/key.ts --concurrency 1`. Add
 * `--incremental` to re-test only the mutants whose code or covering tests changed since the last incremental run.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  ...base,
  vitest: { configFile: 'vitest.server.config.ts', related: false },
  htmlReporter: { fileName: 'reports/mutation-server/index.html' },
  jsonReporter: { fileName: 'reports/mutation-server/mutation.json' },
  incrementalFile: 'reports/stryker-incremental-server.json',
};

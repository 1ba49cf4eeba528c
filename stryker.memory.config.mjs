// @ts-check
import base from './stryker.config.mjs';

/**
 * The memory store and the steps against only the tests that cover them (vitest.memory.config.ts):
 * `npm run test:mutation -- stryker.memory.config.mjs --mutate src/stores/memoryStore.ts`.
 * The full configuration runs every test file that imports the store (most of the server suite) in the dry run.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  ...base,
  vitest: { configFile: 'vitest.memory.config.ts', related: false },
  htmlReporter: { fileName: 'reports/mutation-memory/index.html' },
  jsonReporter: { fileName: 'reports/mutation-memory/mutation.json' },
  tempDirName: '.stryker-tmp-memory',
};

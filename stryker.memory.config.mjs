// @ts-check
import base from './stryker.config.mjs';

/**
 * The memory store (memoryStore.ts, memoryRecords.ts, indexedHeap.ts) and the steps (src/server/steps.ts) against
 * only the tests that cover them (vitest.memory.config.ts), e.g.
 * `npm run test:mutation -- stryker.memory.config.mjs --mutate src/stores/memoryStore.ts`: about 23 minutes for the
 * three store files and 7 for steps.ts on a loaded 2-core machine. The full configuration runs every test file that
 * imports the store (most of the server suite) in the dry run. Add `--incremental` to re-test only the mutants
 * whose code or covering tests changed since the last incremental run.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  ...base,
  vitest: { configFile: 'vitest.memory.config.ts', related: false },
  htmlReporter: { fileName: 'reports/mutation-memory/index.html' },
  jsonReporter: { fileName: 'reports/mutation-memory/mutation.json' },
};

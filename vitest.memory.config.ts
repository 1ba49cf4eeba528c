import { defineConfig } from 'vitest/config';
import { vitestConfig } from './vitest.config';

/**
 * The tests that cover the memory store (src/stores/memoryStore.ts, memoryRecords.ts, indexedHeap.ts) and the
 * steps (src/server/steps.ts), for stryker.memory.config.mjs: mutation runs on a loaded machine stay tractable.
 * None of them needs Redis or PostgreSQL, so the global setup that finds them is left out. (Not mergeConfig: it
 * would append this include to the full one.)
 */
export default defineConfig({
  ...vitestConfig,
  test: {
    ...vitestConfig.test,
    include: ['test/memoryStore*.test.ts', 'test/stores/*.test.ts', 'test/server/flood.http.test.ts', 'test/server/steps*.test.ts'],
    globalSetup: [],
  },
});

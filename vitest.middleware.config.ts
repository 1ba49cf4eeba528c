import { defineConfig } from 'vitest/config';
import { vitestConfig } from './vitest.config';

/**
 * The tests that cover the middleware (src/server/middleware.ts), for stryker.middleware.config.mjs: the server
 * suite, which runs the middleware in-process on the memory store (createCaller and a real HTTP server). None of
 * them needs Redis or PostgreSQL, so the global setup that finds them is left out. (Not mergeConfig: it would
 * append this include to the full one.)
 */
export default defineConfig({
  ...vitestConfig,
  test: {
    ...vitestConfig.test,
    include: ['test/server/*.test.ts'],
    globalSetup: [],
  },
});

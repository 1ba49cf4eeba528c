import { configDefaults, defineConfig } from 'vitest/config';
import { vitestConfig } from './vitest.config';

/**
 * The tests that cover the server's key, fingerprint, claim/lease/finish path and the client's retry policy
 * (test/server and test/client), for stryker.server.config.mjs: mutation runs on a loaded machine stay tractable.
 * None of them needs Redis or PostgreSQL, so the global setup that finds them is left out; the bundle check runs
 * esbuild in another process, where no mutant is switched on. (Not mergeConfig: it would append this include to
 * the full one.)
 */
export default defineConfig({
  ...vitestConfig,
  test: {
    ...vitestConfig.test,
    include: ['test/server/*.test.ts', 'test/client/*.test.ts'],
    exclude: [...configDefaults.exclude, 'test/client/browserBundle.test.ts'],
    globalSetup: [],
  },
});

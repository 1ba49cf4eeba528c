import { defineConfig } from 'vitest/config';
import { vitestConfig } from './vitest.config';

/**
 * The tests that cover the PostgreSQL transactional mode (src/stores/postgres/transaction.ts and
 * src/server/transactional.ts), for stryker.transactional.config.mjs. Every other test that imports them (the
 * whole server suite imports transactional.ts through the middleware, the PostgreSQL suite transaction.ts through
 * the store) never runs the transactional path. The global setup stays: it finds or spawns PostgreSQL and gives
 * the run its own schema. (Not mergeConfig: it would append this include to the full one.)
 */
export default defineConfig({
  ...vitestConfig,
  test: {
    ...vitestConfig.test,
    include: ['test/postgres/transactional.test.ts', 'test/postgres/transactionalRoundTrips.test.ts', 'test/postgres/transactional.capability.test.ts', 'test/postgres/transactional.answers.test.ts', 'test/postgres/transactional.reports.test.ts'],
  },
});

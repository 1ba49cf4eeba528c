import { defineConfig } from 'vitest/config';
import { vitestConfig } from './vitest.config';

/**
 * The tests that cover the PostgreSQL store in store mode (src/stores/postgres/ except the transactional mode's
 * transaction.ts), for stryker.postgres.config.mjs: the conformance suite on PostgreSQL and the store's own tests.
 * The global setup stays: it finds or spawns PostgreSQL and gives the run its own schema. (Not mergeConfig: it would
 * append this include to the full one.)
 */
export default defineConfig({
  ...vitestConfig,
  test: {
    ...vitestConfig.test,
    include: [
      'test/postgres/postgresStore.conformance.test.ts',
      'test/postgres/connections.test.ts',
      'test/postgres/corruptRecords.test.ts',
      'test/postgres/durations.test.ts',
      'test/postgres/expiry.test.ts',
      'test/postgres/fencing.test.ts',
      'test/postgres/options.test.ts',
      'test/postgres/optionRules.test.ts',
      'test/postgres/outage.test.ts',
      'test/postgres/replies.test.ts',
      'test/postgres/roundTrips.test.ts',
      'test/postgres/statementNames.test.ts',
      'test/postgres/tableObjects.test.ts',
      'test/postgres/tableOption.test.ts',
      'test/postgres/wait.test.ts',
      'test/postgres/waitStalled.test.ts',
    ],
  },
});

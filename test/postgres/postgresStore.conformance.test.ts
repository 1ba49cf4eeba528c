import { describeStepConformance } from '../../src/testing/stepConformance';
import { describeStoreConformance } from '../../src/testing/storeConformance';
import { inRunSchema, postgresStoreHarness } from '../helpers/postgresClients';

// Real PostgreSQL has a real clock: leases of 200 ms, and `advance` is a real wait.
describeStoreConformance('createPostgresStore', () => postgresStoreHarness(), { lockTtlMs: 200 });

describeStoreConformance(
  'createPostgresStore (unqualified table, found on the search_path)',
  () => postgresStoreHarness({ table: `t_${Math.random().toString(36).slice(2, 10)}` }, inRunSchema()),
  { lockTtlMs: 200 },
);

// Steps are checked against a short grace and released TTL, so their retention shows within a second.
describeStepConformance('createPostgresStore', () => postgresStoreHarness({ leaseGraceMs: 300, releasedTtlMs: 300 }), {
  lockTtlMs: 200,
  leaseGraceMs: 300,
  releasedTtlMs: 300,
});

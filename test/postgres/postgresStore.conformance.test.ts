import { describeStepConformance } from '../../src/testing/stepConformance';
import { describeStoreConformance } from '../../src/testing/storeConformance';
import { inRunSchema, postgresStoreHarness } from '../helpers/postgresClients';

// Real PostgreSQL has a real clock: leases of 400 ms (a renewal every 200 ms must land in time on a busy 2-core machine), and `advance` is a real wait.
describeStoreConformance('createPostgresStore', () => postgresStoreHarness(), { lockTtlMs: 400 });

describeStoreConformance(
  'createPostgresStore (unqualified table, found on the search_path)',
  () => postgresStoreHarness({ table: `t_${Math.random().toString(36).slice(2, 10)}` }, inRunSchema()),
  { lockTtlMs: 400 },
);

// Steps are checked against a short grace and released TTL, so their retention shows within a second.
describeStepConformance('createPostgresStore', () => postgresStoreHarness({ leaseGraceMs: 300, releasedTtlMs: 300 }), {
  lockTtlMs: 400,
  leaseGraceMs: 300,
  releasedTtlMs: 300,
});

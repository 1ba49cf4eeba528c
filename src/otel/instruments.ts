import type { Counter, Histogram, Meter } from '@opentelemetry/api';

/** The instrumentation scope: `metrics.getMeter(name, version)`. test/otel checks the version against package.json. */
export const OTEL_SCOPE = { name: 'trpc-idempotency', version: '0.1.0' } as const;

/** Metric names, OpenTelemetry semantic-convention style: a dotted namespace, snake_case words, durations in seconds. */
export const METRIC = {
  calls: 'trpc_idempotency.calls',
  storeErrors: 'trpc_idempotency.store_errors',
  events: 'trpc_idempotency.events',
  claimDuration: 'trpc_idempotency.claim.duration',
  procedureDuration: 'trpc_idempotency.procedure.duration',
} as const;

/** A claim is one store round trip: sub-millisecond in memory, about a millisecond on a nearby Redis. */
const CLAIM_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
/** The semantic conventions' buckets for `http.server.request.duration`: procedures are request handlers. */
const PROCEDURE_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

export interface Instruments {
  calls: Counter;
  storeErrors: Counter;
  events: Counter;
  claimDuration: Histogram;
  procedureDuration: Histogram;
}

/** Creates the instruments once, when the observer is built: recording is then a map lookup in the SDK. */
export const createInstruments = (meter: Meter): Instruments => ({
  calls: meter.createCounter(METRIC.calls, {
    description: 'Keyed mutation calls by how the idempotency layer answered them (executed, replayed, conflict, ...).',
    unit: '{call}',
  }),
  storeErrors: meter.createCounter(METRIC.storeErrors, {
    description: 'Idempotency store operations that threw (claim, renew, complete, release, wait).',
    unit: '{error}',
  }),
  events: meter.createCounter(METRIC.events, {
    description: 'Every idempotency event by type, including types this version does not know.',
    unit: '{event}',
  }),
  claimDuration: meter.createHistogram(METRIC.claimDuration, {
    description: 'Time to claim a key that was acquired (one store round trip).',
    unit: 's',
    advice: { explicitBucketBoundaries: CLAIM_BUCKETS_S },
  }),
  procedureDuration: meter.createHistogram(METRIC.procedureDuration, {
    description: 'Time the guarded procedure ran, for calls that executed or released their key.',
    unit: 's',
    advice: { explicitBucketBoundaries: PROCEDURE_BUCKETS_S },
  }),
});

// The manual clock is published in trpc-idempotency/testing; tests keep importing it from here.
export type { ManualClock } from '../../src/testing/manualClock';
export { createManualClock } from '../../src/testing/manualClock';

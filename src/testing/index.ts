export type { ManualClock } from './manualClock';
export { createManualClock } from './manualClock';
export type { ConformanceOptions, StoreHarness } from './storeConformance';
export { describeStoreConformance } from './storeConformance';
export { resetIdempotentStore } from '../server/idempotency';
export { describeStepConformance } from './stepConformance';

export type { Clock, TimerHandle } from './clock';
export { systemClock } from './clock';
export { DEFAULTS } from './constants';
export type { IdempotencyErrorCode, IdempotencyErrorOptions } from './errors';
export { IdempotencyError, isIdempotencyError } from './errors';
export { idempotencyErrorData } from './server/trpcErrors';
export type { Serializer } from './serialization';
export { superjsonSerializer } from './serialization';
export type { IdempotencyEvent, IdempotencyEventType } from './server/events';
export type { Idempotency, TransactionClientOf } from './server/idempotency';
export { createIdempotency, idempotent } from './server/idempotency';
export type { IdempotencyContext, IdempotencyExecution, IdempotentMiddleware } from './server/middleware';
export type { GetKeyOptions, IdempotencyOptions, IdempotentOptions } from './server/options';
export type { TransactionalContext, TransactionalExecution, TransactionalMiddleware } from './server/transactional';
export { defaultShouldStoreError } from './server/options';
export { idempotencyResponseMeta } from './server/reporting';
export type { StepContext, StepFn, StepOptions } from './server/steps';
export { stepsOf } from './server/steps';
export type {
  ClaimOutcome,
  ClaimRequest,
  CommitOutcome,
  CompleteRequest,
  IdempotencyStore,
  LeaseOutcome,
  LeaseRequest,
  OpenTransaction,
  RecordedSteps,
  RecordRef,
  RenewRequest,
  StepOutcome,
  StepRequest,
  TransactionalCapability,
  TransactionalClaim,
  TransactionalStore,
  WaitOutcome,
  WaitRequest,
} from './store';
export { GLOBAL_PARTITION, isTransactionalStore, NO_STEPS } from './store';
export type { LocalCacheOptions } from './stores/localCache';
export type { MemoryStoreOptions } from './stores/memoryStore';
export { createMemoryStore } from './stores/memoryStore';
export type { IdempotencyErrorData, KeyStatus } from './wire';
export { isValidKey, KEY_HEADER, KEYS_HEADER, MAX_KEY_LENGTH, REPLAYED_HEADER, STATUS_HEADER, STATUSES_HEADER } from './wire';

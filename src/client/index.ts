export { idempotencyLink } from './idempotencyLink';
export type { IdempotencyLinkOptions, IdempotencyReplayEvent } from './idempotencyLink';
export { idempotencyHeaders } from './headers';
export { idempotentRetry } from './idempotentRetry';
export type { IdempotentRetryFnOptions, IdempotentRetryLinkOptions, IdempotentRetryOptions } from './idempotentRetry';
export { generateUuidV4 } from './generateKey';
export type { IdempotencyCallInfo, IdempotencyWarning, IdempotencyWarningCode } from './types';
export type { IdempotencyErrorData, KeyStatus } from '../wire';
export { isValidKey, MAX_KEYS_HEADER_LENGTH } from '../wire';

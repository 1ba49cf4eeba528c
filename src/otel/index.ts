export { ATTR } from './attributes';
export { METRIC, OTEL_SCOPE } from './instruments';
export type { IdempotencyEventInfo, IdempotencyObserver, OtelObserverOptions } from './observer';
export { createOtelObserver } from './observer';

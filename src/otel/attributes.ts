import type { Attributes } from '@opentelemetry/api';
import { isIdempotencyError } from '../errors';

/** Attribute names. `trpc.procedure` and `error.type` as the semantic conventions spell them; the rest ours. */
export const ATTR = {
  procedure: 'trpc.procedure',
  errorType: 'error.type',
  outcome: 'trpc_idempotency.outcome',
  result: 'trpc_idempotency.result',
  event: 'trpc_idempotency.event',
  operation: 'trpc_idempotency.operation',
  phase: 'trpc_idempotency.phase',
  reason: 'trpc_idempotency.reason',
  failedOpen: 'trpc_idempotency.failed_open',
  takeover: 'trpc_idempotency.takeover',
  keyHash: 'trpc_idempotency.key_hash',
  status: 'trpc_idempotency.status',
} as const;

/** An event as the observer reads it: any type, any fields, so event types added later never break it. */
export interface LooseEvent {
  type: string;
  path: string;
  keyHash: string;
  [field: string]: unknown;
}

/** The event types that end a call, and the outcome `trpc_idempotency.calls` counts them under. */
const CALL_OUTCOMES: Readonly<Record<string, string>> = {
  completed: 'executed',
  released: 'released',
  replayed: 'replayed',
  conflict: 'conflict',
  mismatch: 'mismatch',
  unguarded: 'unguarded',
};

export const callOutcome = (type: string): string | undefined => (Object.hasOwn(CALL_OUTCOMES, type) ? CALL_OUTCOMES[type] : undefined);

/**
 * Event fields that take a handful of values, kept on metrics under these names. Numbers (durations, bytes,
 * fences) and the key hash would give every call its own time series: they go to spans only.
 */
const METRIC_FIELDS: readonly (readonly [field: string, attribute: string])[] = [
  ['outcome', ATTR.result],
  ['code', ATTR.errorType],
  ['reason', ATTR.reason],
  ['phase', ATTR.phase],
  ['operation', ATTR.operation],
  ['failedOpen', ATTR.failedOpen],
  ['takeover', ATTR.takeover],
];

/** The metric attributes of one event: the procedure and its few-valued fields. */
export const metricAttributes = (event: LooseEvent): Attributes => {
  const attributes: Attributes = { [ATTR.procedure]: event.path };
  for (const [field, attribute] of METRIC_FIELDS) {
    const value = event[field];
    if (typeof value === 'string' || typeof value === 'boolean') attributes[attribute] = value;
  }
  return attributes;
};

/** Fields never copied to a span: named above, not scalar, or (should one ever be added) the raw key. */
const SPAN_SKIPPED = new Set(['type', 'path', 'keyHash', 'error', 'key']);
const spanNames = new Map<string, string>();
/** `durationMs` -> `trpc_idempotency.duration_ms`, computed once per field name. */
const spanName = (field: string): string => {
  let name = spanNames.get(field);
  if (name === undefined) {
    name = `trpc_idempotency.${field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)}`;
    spanNames.set(field, name);
  }
  return name;
};

/** The attributes of one event's span event: the procedure, the key hash and every scalar field. */
export const spanEventAttributes = (event: LooseEvent): Attributes => {
  const attributes: Attributes = { [ATTR.procedure]: event.path, [ATTR.keyHash]: event.keyHash };
  for (const field in event) {
    const value = event[field];
    if (SPAN_SKIPPED.has(field)) continue;
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') attributes[spanName(field)] = value;
  }
  return attributes;
};

/** `error.type` of a store error: our error code, else the error's class name; `_OTHER` as the conventions say. */
export const errorType = (error: unknown): string => {
  if (isIdempotencyError(error)) return error.code;
  if (error instanceof Error) return error.name;
  return '_OTHER';
};

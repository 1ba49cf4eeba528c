/**
 * Structured logs from `onEvent`: one JSON object per idempotency event, carrying the trace and span ids of the
 * request it happened in, so a log line leads to its trace and a trace to its log lines.
 */
import { trace } from '@opentelemetry/api';
import type { IdempotencyEvent } from 'trpc-idempotency';

type StoreError = Extract<IdempotencyEvent, { type: 'store_error' }>;
/** An event as logged: a store error's `error` becomes its message (an Error object serializes as `{}`). */
export type LoggedEvent = Exclude<IdempotencyEvent, StoreError> | (Omit<StoreError, 'error'> & { error: string });

export interface EventLogRecord {
  level: 'info' | 'warn' | 'error';
  msg: string;
  /** The event's own fields (type, path, keyHash, durations, ...): never the raw key, which events do not carry. */
  event: LoggedEvent;
  trace_id?: string;
  span_id?: string;
}

/** Events that deserve a look: a client reused a key for another input, or the store failed. */
const LEVELS: Partial<Record<IdempotencyEvent['type'], EventLogRecord['level']>> = {
  mismatch: 'warn',
  lease_lost: 'warn',
  not_stored: 'warn',
  store_error: 'error',
};

export const eventLogRecord = (event: IdempotencyEvent): EventLogRecord => {
  // Store errors come from the store, which only ever sees the key's hash: their message is safe to log.
  const fields: LoggedEvent =
    event.type === 'store_error' ? { ...event, error: event.error instanceof Error ? event.error.message : String(event.error) } : event;
  const span = trace.getActiveSpan()?.spanContext();
  return {
    level: LEVELS[event.type] ?? 'info',
    msg: `idempotency ${event.type} ${event.path}`,
    event: fields,
    ...(span && { trace_id: span.traceId, span_id: span.spanId }),
  };
};

import type { TRPCError } from '@trpc/server';

interface EventBase {
  /** Procedure path, e.g. `order.create`. */
  path: string;
  /** The record id: a hash of (scope, path, key); safe to log, unlike the key. */
  keyHash: string;
}

/** What the middleware reports through `onEvent`, for logs and metrics. */
export type IdempotencyEvent =
  | (EventBase & { type: 'claimed'; fence: number; takeover: boolean; durationMs: number })
  | (EventBase & { type: 'replayed'; outcome: 'ok' | 'error' | 'not_stored'; durationMs: number })
  | (EventBase & { type: 'conflict'; retryAfterMs: number; waitedMs: number })
  | (EventBase & { type: 'mismatch' })
  | (EventBase & { type: 'completed'; outcome: 'ok' | 'error'; bytes: number; durationMs: number })
  | (EventBase & { type: 'not_stored'; reason: 'too_large' | 'unserializable'; bytes?: number; limitBytes: number })
  | (EventBase & { type: 'released'; code: TRPCError['code']; durationMs: number })
  /** `claim`: the claim was answered after its lease could have ended, so the procedure was not run. */
  | (EventBase & { type: 'lease_lost'; phase: 'claim' | 'renew' | 'complete' | 'release' | 'step' })
  | (EventBase & {
      type: 'store_error';
      operation: 'claim' | 'renew' | 'complete' | 'release' | 'wait' | 'step';
      error: unknown;
      /** `true` when `onStoreError: 'fail-open'` let the call run unguarded. */
      failedOpen: boolean;
    })
  /**
   * A mutation ran without the idempotency guard: a retry of it runs it again. One per such call, so a dashboard
   * can count them. `no_headers`: ctx holds no request headers and neither `getKey` nor `inputKey` is set, so no
   * call of this procedure can ever carry a key (put `req` in ctx; a warning says so once per procedure).
   * `no_key`: the call came without a key. `fail_open`: the store failed to claim the key and
   * `onStoreError: 'fail-open'` ran it anyway (its `store_error` event has the details); only this one has a
   * `keyHash`.
   */
  | {
      type: 'unguarded';
      path: string;
      reason: 'no_headers' | 'no_key' | 'fail_open';
      keyHash?: string;
    }
  /** A durable step ran and was recorded (`bytes`: the recorded text, or the value's size when not stored). */
  | (EventBase & { type: 'step_recorded'; name: string; outcome: 'ok' | 'error' | 'not_stored'; bytes: number; durationMs: number })
  /** A durable step was answered from its record; its `fn` was not called. */
  | (EventBase & { type: 'step_replayed'; name: string })
  /** Steps an earlier attempt recorded that this attempt never reached (renamed or removed): ignored. */
  | (EventBase & { type: 'steps_unused'; names: string[] });

export type IdempotencyEventType = IdempotencyEvent['type'];

/** What `onEvent` gets with each event: the call's tRPC context, to correlate events with logs and traces. */
export interface IdempotencyEventInfo<TContext = unknown> {
  /** The tRPC `ctx` of the call the event is about (e.g. to read a request id or the active span). */
  ctx: TContext;
}

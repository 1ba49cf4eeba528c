import type { Cluster, Redis } from 'ioredis';
import { systemClock } from '../clock';
import { delayQueue } from '../delayQueue';
import { IdempotencyError, isIdempotencyError } from '../errors';

export interface DeadlineOptions {
  /** Names the call in errors, e.g. `claim`. */
  op: string;
  timeoutMs: number;
}

/**
 * Runs one Redis call and bounds it: any failure, and no answer within `timeoutMs`, become
 * `IdempotencyError('STORE_UNAVAILABLE')`. A client that is reconnecting or closed fails at once instead of
 * parking the command in ioredis' offline queue. The call is never retried. A claim that timed out here may
 * still reach Redis later: the claim script refuses it past its deadline (see redisTime), and one that acquired
 * anyway (its reply was on the way) is given back by the store.
 */
export const withDeadline = <T>(client: Redis | Cluster, options: DeadlineOptions, run: () => Promise<T>): Promise<T> => {
  const { op, timeoutMs } = options;
  if (DOWN.has(client.status)) {
    return Promise.reject(unavailable(`redis ${op} not sent: the client is ${client.status}`, undefined, timeoutMs));
  }
  // One promise settled by whichever comes first (no Promise.race, no second promise per call). Deadlines of one
  // length share one timer: a timer per call cost more than the call's own work at concurrency 1.
  return new Promise<T>((resolve, reject) => {
    const cancel = delayQueue(systemClock, timeoutMs).add(() =>
      reject(unavailable(`redis ${op} got no answer within ${timeoutMs} ms (operationTimeoutMs)`, undefined, timeoutMs)),
    );
    const fail = (error: unknown): void => {
      cancel();
      reject(
        isIdempotencyError(error)
          ? error
          : unavailable(`redis ${op} failed: ${error instanceof Error ? error.message : String(error)}`, error, timeoutMs),
      );
    };
    let pending: Promise<T>;
    try {
      pending = run();
    } catch (error) {
      fail(error);
      return;
    }
    pending.then((value) => {
      cancel();
      resolve(value);
    }, fail);
  });
};

// ---- internal helpers ----

/** Statuses in which ioredis would only queue the command (or reject it) instead of sending it. */
const DOWN = new Set(['reconnecting', 'close', 'end']);

const unavailable = (message: string, cause: unknown, retryAfterMs: number): IdempotencyError =>
  new IdempotencyError('STORE_UNAVAILABLE', message, { cause, retryAfterMs });

import type { Cluster, Redis } from 'ioredis';
import { IdempotencyError, isIdempotencyError } from '../errors';

export interface DeadlineOptions {
  /** Names the call in errors, e.g. `claim`. */
  op: string;
  timeoutMs: number;
}

/**
 * Runs one Redis call and bounds it: any failure, and no answer within `timeoutMs`, become
 * `IdempotencyError('STORE_UNAVAILABLE')`. A client that is reconnecting or closed fails at once instead of
 * parking the command in ioredis' offline queue. The call is never retried: a claim that timed out here may
 * still land in Redis later, which is safe (it is a lease that expires).
 */
export const withDeadline = async <T>(
  client: Redis | Cluster,
  options: DeadlineOptions,
  run: () => Promise<T>,
): Promise<T> => {
  const { op, timeoutMs } = options;
  if (DOWN.has(client.status)) {
    throw unavailable(`redis ${op} not sent: the client is ${client.status}`, undefined, timeoutMs);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => reject(unavailable(`redis ${op} got no answer within ${timeoutMs} ms (operationTimeoutMs)`, undefined, timeoutMs)),
      timeoutMs,
    );
    timer.unref?.();
  });
  try {
    return await Promise.race([run(), deadline]);
  } catch (error) {
    if (isIdempotencyError(error)) throw error;
    throw unavailable(`redis ${op} failed: ${error instanceof Error ? error.message : String(error)}`, error, timeoutMs);
  } finally {
    clearTimeout(timer);
  }
};

// ---- internal helpers ----

/** Statuses in which ioredis would only queue the command (or reject it) instead of sending it. */
const DOWN = new Set(['reconnecting', 'close', 'end']);

const unavailable = (message: string, cause: unknown, retryAfterMs: number): IdempotencyError =>
  new IdempotencyError('STORE_UNAVAILABLE', message, { cause, retryAfterMs });

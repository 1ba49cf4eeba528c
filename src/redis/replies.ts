import type { ClaimOutcome, LeaseOutcome } from '../store';
import { IdempotencyError } from '../errors';

/** Outcome of the peek script, used by waiters. */
export type PeekOutcome = { status: 'settled' } | { status: 'in_progress'; leaseLeftMs: number };

export interface ReplyContext {
  script: string;
  /** Full Redis key of the record, for error messages. */
  key: string;
}

export const parseClaimReply = (reply: unknown, context: ReplyContext): ClaimOutcome => {
  const [status, first, second] = checkReply(reply, context);
  switch (status) {
    case 'acquired':
      return { status, fence: toInteger(first, context), takeover: second === '1' };
    case 'in_progress':
      return { status, retryAfterMs: Math.max(1, toInteger(first, context)) };
    case 'completed':
      if (typeof first !== 'string') break;
      return { status, result: first };
    case 'mismatch':
      return { status };
  }
  throw unexpectedReply(reply, context);
};

export const parseLeaseReply = (reply: unknown, context: ReplyContext): LeaseOutcome => {
  const [status] = checkReply(reply, context);
  if (status === 'ok' || status === 'lost') return { status };
  throw unexpectedReply(reply, context);
};

export const parsePeekReply = (reply: unknown, context: ReplyContext): PeekOutcome => {
  const [status, first] = checkReply(reply, context);
  if (status === 'settled') return { status };
  if (status === 'in_progress') return { status, leaseLeftMs: Math.max(1, toInteger(first, context)) };
  throw unexpectedReply(reply, context);
};

// ---- internal helpers ----

/** Turns the scripts' `{"corrupt", reason}` into RECORD_CORRUPT; returns the other replies as strings. */
const checkReply = (reply: unknown, context: ReplyContext): Array<string | undefined> => {
  if (!Array.isArray(reply) || !reply.every((item) => typeof item === 'string')) throw unexpectedReply(reply, context);
  const items = reply as string[];
  if (items[0] === 'corrupt') {
    throw new IdempotencyError(
      'RECORD_CORRUPT',
      `record ${context.key} ${items[1] ?? 'is unreadable'}: it was not written by this store (or by another ` +
        'version of it) and was left untouched; delete it or use another prefix',
    );
  }
  return items;
};

const toInteger = (value: string | undefined, context: ReplyContext): number => {
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw unexpectedReply(value, context);
  return number;
};

/** A reply the script cannot produce: a broken invariant, not an expected outcome. */
export const unexpectedReply = (reply: unknown, context: ReplyContext): Error =>
  new Error(`trpc-idempotency: unexpected reply from the ${context.script} script for ${context.key}: ${JSON.stringify(reply)}`);

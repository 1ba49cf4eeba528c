import type { ClaimOutcome, LeaseOutcome } from '../store';
import { IdempotencyError } from '../errors';

/** Outcome of the peek script, used by waiters. */
export type PeekOutcome = { status: 'settled' } | { status: 'in_progress'; leaseLeftMs: number };

export interface ReplyContext {
  script: string;
  /** Full Redis key of the record, for error messages. */
  key: string;
}

/** One record's reply from the claim script: a string whose first character is the outcome. */
export const parseClaimReply = (reply: unknown, context: ReplyContext): ClaimOutcome => {
  if (typeof reply === 'string') {
    switch (reply.charCodeAt(0)) {
      case CODE.A: {
        const fence = Number(reply.slice(2));
        if (reply.length > 2 && Number.isSafeInteger(fence)) return { status: 'acquired', fence, takeover: reply[1] === '1' };
        break;
      }
      case CODE.I: {
        const left = Number(reply.slice(1));
        if (reply.length > 1 && Number.isSafeInteger(left)) return { status: 'in_progress', retryAfterMs: Math.max(1, left) };
        break;
      }
      case CODE.C:
        return { status: 'completed', result: reply.slice(1) };
      case CODE.M:
        if (reply.length === 1) return { status: 'mismatch' };
        break;
      case CODE.X:
        throw corrupt(reply.slice(1), context);
    }
  }
  throw unexpectedReply(reply, context);
};

/** One record's reply from the renew, complete or release script: `O` ok, `L` lost, `X<reason>` corrupt. */
export const parseLeaseReply = (reply: unknown, context: ReplyContext): LeaseOutcome => {
  if (reply === 'O') return OK;
  if (reply === 'L') return LOST;
  if (typeof reply === 'string' && reply.charCodeAt(0) === CODE.X) throw corrupt(reply.slice(1), context);
  throw unexpectedReply(reply, context);
};

export const parsePeekReply = (reply: unknown, context: ReplyContext): PeekOutcome => {
  const [status, first] = checkReply(reply, context);
  if (status === 'settled') return { status };
  if (status === 'in_progress') return { status, leaseLeftMs: Math.max(1, toInteger(first, context)) };
  throw unexpectedReply(reply, context);
};

// ---- internal helpers ----

/** peek's reply: turns `{"corrupt", reason}` into RECORD_CORRUPT; returns the other replies as strings. */
const checkReply = (reply: unknown, context: ReplyContext): Array<string | undefined> => {
  if (!Array.isArray(reply) || !reply.every((item) => typeof item === 'string')) throw unexpectedReply(reply, context);
  const items = reply as string[];
  if (items[0] === 'corrupt') throw corrupt(items[1], context);
  return items;
};

const corrupt = (reason: string | undefined, context: ReplyContext): IdempotencyError =>
  new IdempotencyError(
    'RECORD_CORRUPT',
    `record ${context.key} ${reason || 'is unreadable'}: it was not written by this store (or by another ` +
      'version of it) and was left untouched; delete it or use another prefix',
  );

const CODE = { A: 65, C: 67, I: 73, M: 77, X: 88 } as const;

// Lease outcomes carry no data: share them (callers only read `status`).
const OK: LeaseOutcome = Object.freeze({ status: 'ok' });
const LOST: LeaseOutcome = Object.freeze({ status: 'lost' });

const toInteger = (value: string | undefined, context: ReplyContext): number => {
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw unexpectedReply(value, context);
  return number;
};

/** A reply the script cannot produce: a broken invariant, not an expected outcome. */
export const unexpectedReply = (reply: unknown, context: ReplyContext): Error =>
  new Error(`trpc-idempotency: unexpected reply from the ${context.script} script for ${context.key}: ${JSON.stringify(reply)}`);

import type { ClaimOutcome, LeaseOutcome, StepOutcome } from '../store';
import { NO_STEPS } from '../store';
import { IdempotencyError } from '../errors';

/** Outcome of the peek script, used by waiters. */
export type PeekOutcome = { status: 'settled' } | { status: 'in_progress'; leaseLeftMs: number };

export interface ReplyContext {
  script: string;
  /** Full Redis key of the record, for error messages. */
  key: string;
}

/**
 * One record's reply from the claim script: a string whose first character is the outcome, or for a record with
 * durable steps an array: the acquired string, then name, text pairs (see claim.lua).
 */
export const parseClaimReply = (reply: unknown, context: ReplyContext): ClaimOutcome => {
  if (Array.isArray(reply)) return parseAcquiredWithSteps(reply, context);
  if (typeof reply === 'string') {
    switch (reply.charCodeAt(0)) {
      case CODE.A: {
        const fence = Number(reply.slice(2));
        if (reply.length > 2 && Number.isSafeInteger(fence)) return { status: 'acquired', fence, takeover: reply[1] === '1', steps: NO_STEPS };
        break;
      }
      case CODE.I: {
        const left = leaseLeft(reply);
        if (left !== undefined) return { status: 'in_progress', retryAfterMs: left };
        break;
      }
      case CODE.C: {
        // `C<ttl>:<result>`: the ttl is digits only (or empty), so the first colon ends it.
        const colon = reply.indexOf(':');
        if (colon === -1) break;
        if (colon === 1) return { status: 'completed', result: reply.slice(2) };
        const ttl = Number(reply.slice(1, colon));
        if (Number.isSafeInteger(ttl) && ttl >= 0) return { status: 'completed', result: reply.slice(colon + 1), expiresInMs: ttl };
        break;
      }
      case CODE.M:
        if (reply.length === 1) return { status: 'mismatch' };
        break;
      case CODE.X:
        throw corrupt(reply.slice(1), context);
      case CODE.T:
        if (reply.length === 1) throw tooLate(context);
        break;
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

/** One record's reply from the step script: `O` ok, `E<text>` exists, `L` lost, `X<reason>` corrupt. */
export const parseStepReply = (reply: unknown, context: ReplyContext): StepOutcome => {
  if (reply === 'O') return OK;
  if (reply === 'L') return LOST;
  if (typeof reply === 'string') {
    if (reply.charCodeAt(0) === CODE.E) return { status: 'exists', text: reply.slice(1) };
    if (reply.charCodeAt(0) === CODE.X) throw corrupt(reply.slice(1), context);
  }
  throw unexpectedReply(reply, context);
};

/** The peek script's reply: `I<ms>` a live lease, `S` settled, `X<reason>` corrupt (the claim's letters). */
export const parsePeekReply = (reply: unknown, context: ReplyContext): PeekOutcome => {
  if (reply === 'S') return SETTLED;
  if (typeof reply === 'string') {
    if (reply.charCodeAt(0) === CODE.X) throw corrupt(reply.slice(1), context);
    const left = reply.charCodeAt(0) === CODE.I ? leaseLeft(reply) : undefined;
    if (left !== undefined) return { status: 'in_progress', leaseLeftMs: left };
  }
  throw unexpectedReply(reply, context);
};

// ---- internal helpers ----

const parseAcquiredWithSteps = (reply: unknown[], context: ReplyContext): ClaimOutcome => {
  const head = reply[0];
  const acquired = typeof head === 'string' && head.charCodeAt(0) === CODE.A && reply.length % 2 === 1 ? parseClaimReply(head, context) : undefined;
  if (acquired?.status !== 'acquired') throw unexpectedReply(reply, context);
  const steps = new Map<string, string>();
  for (let i = 1; i < reply.length; i += 2) {
    const [name, text] = [reply[i], reply[i + 1]];
    if (typeof name !== 'string' || typeof text !== 'string') throw unexpectedReply(reply, context);
    steps.set(name, text);
  }
  return { ...acquired, steps };
};

/** The lease left in an `I<ms>` reply, at least 1 ms; `undefined` when `<ms>` is not a whole number. */
const leaseLeft = (reply: string): number | undefined => {
  const left = Number(reply.slice(1));
  return reply.length > 1 && Number.isSafeInteger(left) ? Math.max(1, left) : undefined;
};

/** The claim reached Redis after its deadline (see redisTime): refused, nothing written; the store gave up on it. */
const tooLate = (context: ReplyContext): IdempotencyError =>
  new IdempotencyError(
    'STORE_UNAVAILABLE',
    `redis ${context.script} for ${context.key} reached Redis too late (Redis was stalled or the reply slow): nothing was claimed`,
    { retryAfterMs: 1000 },
  );

const corrupt = (reason: string | undefined, context: ReplyContext): IdempotencyError =>
  new IdempotencyError(
    'RECORD_CORRUPT',
    `record ${context.key} ${reason || 'is unreadable'}: it was not written by this store (or by another ` +
      'version of it) and was left untouched; delete it or use another prefix',
  );

const CODE = { A: 65, C: 67, E: 69, I: 73, M: 77, T: 84, X: 88 } as const;

// Lease outcomes carry no data: share them (callers only read `status`).
const OK: LeaseOutcome = Object.freeze({ status: 'ok' });
const LOST: LeaseOutcome = Object.freeze({ status: 'lost' });
const SETTLED: PeekOutcome = Object.freeze({ status: 'settled' });

/** A reply the script cannot produce: a broken invariant, not an expected outcome. */
export const unexpectedReply = (reply: unknown, context: ReplyContext): Error =>
  new Error(`trpc-idempotency: unexpected reply from the ${context.script} script for ${context.key}: ${JSON.stringify(reply)}`);

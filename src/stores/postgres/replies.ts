import type { ClaimOutcome, LeaseOutcome, StepOutcome } from '../../store';
import { NO_STEPS } from '../../store';
import { IdempotencyError } from '../../errors';

/** How a waiter sees a record. */
export type PeekOutcome = { status: 'settled' } | { status: 'in_progress'; leaseLeftMs: number };

/** The claim function's reply (see sql/claim.sql): its first character is the outcome. */
export const parseClaimReply = (reply: string, where: string): ClaimOutcome => {
  switch (reply.charCodeAt(0)) {
    case CODE.A: {
      // 'A' takeover fence, then for a row with durable steps a newline and the steps as a JSON object.
      const newline = reply.indexOf('\n');
      const fence = Number(reply.slice(2, newline < 0 ? undefined : newline));
      if (!(reply.length > 2 && Number.isSafeInteger(fence))) break;
      const steps = newline < 0 ? NO_STEPS : parseSteps(reply.slice(newline + 1));
      if (steps) return { status: 'acquired', fence, takeover: reply[1] === '1', steps };
      break;
    }
    case CODE.I: {
      const left = leaseLeft(reply);
      if (left !== undefined) return { status: 'in_progress', retryAfterMs: left };
      break;
    }
    case CODE.C:
      return { status: 'completed', result: reply.slice(1) };
    case CODE.M:
      if (reply.length === 1) return MISMATCH;
      break;
    case CODE.X:
      throw corrupt(reply.slice(1), where);
  }
  throw unexpectedReply(reply, 'claim', where);
};

/** The renew, complete or release function's reply: `O` ok, `L` lost, `X<reason>` corrupt. */
export const parseLeaseReply = (reply: string, where: string): LeaseOutcome => {
  if (reply === 'O') return OK;
  if (reply === 'L') return LOST;
  if (reply.charCodeAt(0) === CODE.X) throw corrupt(reply.slice(1), where);
  throw unexpectedReply(reply, 'lease', where);
};

/** The step function's reply: `O` ok, `E<text>` exists, `L` lost, `X<reason>` corrupt. */
export const parseStepReply = (reply: string, where: string): StepOutcome => {
  if (reply === 'O') return OK;
  if (reply === 'L') return LOST;
  if (reply.charCodeAt(0) === CODE.E) return { status: 'exists', text: reply.slice(1) };
  if (reply.charCodeAt(0) === CODE.X) throw corrupt(reply.slice(1), where);
  throw unexpectedReply(reply, 'step', where);
};

/** The peek function's reply: `I<ms>` a live lease, `S` settled, `X<reason>` corrupt. */
export const parsePeekReply = (reply: string, where: string): PeekOutcome => {
  if (reply === 'S') return SETTLED;
  if (reply.charCodeAt(0) === CODE.X) throw corrupt(reply.slice(1), where);
  const left = reply.charCodeAt(0) === CODE.I ? leaseLeft(reply) : undefined;
  if (left !== undefined) return { status: 'in_progress', leaseLeftMs: left };
  throw unexpectedReply(reply, 'peek', where);
};

// ---- internal helpers ----

/** The steps object of a claim reply as a map; `undefined` when it is not an object of strings. */
const parseSteps = (json: string): Map<string, string> | undefined => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const steps = new Map<string, string>();
  for (const [name, text] of Object.entries(parsed)) {
    if (typeof text !== 'string') return undefined;
    steps.set(name, text);
  }
  return steps;
};

const leaseLeft = (reply: string): number | undefined => {
  const left = Number(reply.slice(1));
  return reply.length > 1 && Number.isSafeInteger(left) ? Math.max(1, left) : undefined;
};

const corrupt = (reason: string, where: string): IdempotencyError =>
  new IdempotencyError(
    'RECORD_CORRUPT',
    `${where} ${reason || 'is unreadable'}: it was not written by this store (or by another version of it) and ` +
      'was left untouched; delete the row or use another table',
  );

const unexpectedReply = (reply: string, fn: string, where: string): Error =>
  new Error(`trpc-idempotency: unexpected reply from the ${fn} function for ${where}: ${JSON.stringify(reply.slice(0, 200))}`);

const CODE = { A: 65, C: 67, E: 69, I: 73, M: 77, X: 88 } as const;

// Outcomes without data are shared (callers only read `status`).
const OK: LeaseOutcome = Object.freeze({ status: 'ok' });
const LOST: LeaseOutcome = Object.freeze({ status: 'lost' });
const MISMATCH: ClaimOutcome = Object.freeze({ status: 'mismatch' });
const SETTLED: PeekOutcome = Object.freeze({ status: 'settled' });

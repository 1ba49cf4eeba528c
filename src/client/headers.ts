import type { Operation, OperationContext } from '@trpc/client';
import { KEY_HEADER, KEYS_HEADER } from '../wire';

/** Contexts whose key went into a request header: lets the link tell "helper missing" from "server ignored it". */
const sentContexts = new WeakSet<OperationContext>();

/** Each keyed call's position in the batch it was last sent in (absent when last sent alone). */
const positions = new WeakMap<OperationContext, number>();

/** @internal Whether `idempotencyHeaders` put this call's key on a request. */
export const wasKeySent = (context: OperationContext): boolean => sentContexts.has(context);

/** @internal The call's position in the batch it was last sent in, to read `Idempotency-Statuses`. */
export const batchPositionOf = (context: OperationContext): number | undefined => positions.get(context);

const keyOf = (op: Operation): string | null => {
  const key = op.type === 'mutation' ? op.context.idempotencyKey : undefined;
  if (typeof key !== 'string') return null;
  sentContexts.add(op.context);
  return key;
};

/**
 * The `headers` option of `httpLink`, `httpBatchLink` and `httpBatchStreamLink`: sends each mutation's key.
 * With one operation (`{ op }`, httpLink) it sets `Idempotency-Key`; with a batch (`{ opList }`) it sets
 * `Idempotency-Keys`, a JSON array indexed by position in the batch with `null` where a call has no key.
 * Returns `{}` when no call has a key. Compose it with your own headers by spreading both.
 *
 * @example
 * httpBatchLink({ url, headers: idempotencyHeaders })
 * httpBatchLink({ url, headers: (opts) => ({ authorization: token(), ...idempotencyHeaders(opts) }) })
 */
export const idempotencyHeaders = (
  opts: { op: Operation } | { opList: readonly Operation[] },
): Record<string, string> => {
  if ('op' in opts) {
    positions.delete(opts.op.context);
    const key = keyOf(opts.op);
    return key === null ? {} : { [KEY_HEADER]: key };
  }
  opts.opList.forEach((op, index) => positions.set(op.context, index));
  const keys = opts.opList.map(keyOf);
  return keys.some((key) => key !== null) ? { [KEYS_HEADER]: JSON.stringify(keys) } : {};
};

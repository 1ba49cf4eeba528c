import type { Operation, OperationContext } from '@trpc/client';
import { KEY_HEADER, KEYS_HEADER, MAX_KEYS_HEADER_LENGTH } from '../wire';

/** Contexts whose key went into a request header: lets the link tell "helper missing" from "server ignored it". */
const sentContexts = new WeakSet<OperationContext>();

/** Each keyed call's position in the batch it was last sent in (absent when last sent alone). */
const positions = new WeakMap<OperationContext, number>();

/** Contexts of calls whose batch was refused for a too long `Idempotency-Keys`: the link warns about them. */
const refusedContexts = new WeakSet<OperationContext>();

/** @internal Whether `idempotencyHeaders` refused the batch this call was in, so nothing was sent. */
export const wasBatchRefused = (context: OperationContext): boolean => refusedContexts.has(context);

/** @internal Whether `idempotencyHeaders` put this call's key on a request. */
export const wasKeySent = (context: OperationContext): boolean => sentContexts.has(context);

/** @internal The call's position in the batch it was last sent in, to read `Idempotency-Statuses`. */
export const batchPositionOf = (context: OperationContext): number | undefined => positions.get(context);

const keyOf = (op: Operation): string | null => {
  const key = op.type === 'mutation' ? op.context.idempotencyKey : undefined;
  return typeof key === 'string' ? key : null;
};

/** Remembers that the call's key went on a request (at `position` in a batch), and not in a refused batch. */
const markSent = (context: OperationContext, position: number | undefined): void => {
  sentContexts.add(context);
  refusedContexts.delete(context);
  if (position === undefined) positions.delete(context);
  else positions.set(context, position);
};

/** The `headers` option of tRPC's HTTP links: the headers to add for one request (`{ op }`) or batch (`{ opList }`). */
export type IdempotencyHeadersFn = (opts: { op: Operation } | { opList: readonly Operation[] }) => Record<string, string>;

export interface IdempotencyHeadersOptions {
  /**
   * Request header carrying the key: the server's `headerName` (`createIdempotency({ headerName })`); batches use
   * the same name plus `s`. Case does not matter (HTTP header names are case-insensitive).
   * @default 'idempotency-key'
   */
  headerName?: string;
}

/** What the server accepts as `headerName` (an HTTP token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/i;

/**
 * Makes the `headers` option of `httpLink`, `httpBatchLink` and `httpBatchStreamLink` for a server whose
 * `headerName` is not the default: `headers: createIdempotencyHeaders({ headerName: 'x-request-key' })`.
 * `idempotencyHeaders` is `createIdempotencyHeaders()`.
 */
export const createIdempotencyHeaders = ({ headerName = KEY_HEADER }: IdempotencyHeadersOptions = {}): IdempotencyHeadersFn => {
  // config time: the names resolved once
  if (typeof headerName !== 'string' || !HEADER_NAME.test(headerName)) {
    throw new TypeError(`trpc-idempotency: createIdempotencyHeaders option \`headerName\` must be a valid HTTP header name, got ${JSON.stringify(headerName)}`);
  }
  const single = headerName.toLowerCase();
  const list = single === KEY_HEADER ? KEYS_HEADER : `${single}s`;
  const listShown = single === KEY_HEADER ? 'Idempotency-Keys' : list;
  return (opts) => {
    // request time: once per request
    if ('op' in opts) {
      const key = keyOf(opts.op);
      if (key === null) return {};
      markSent(opts.op.context, undefined);
      return { [single]: key };
    }
    const keys = opts.opList.map(keyOf);
    if (!keys.some((key) => key !== null)) return {};
    const value = JSON.stringify(keys);
    if (value.length > MAX_KEYS_HEADER_LENGTH) {
      for (const op of opts.opList) refusedContexts.add(op.context);
      throw new Error(batchTooLarge(listShown, keys.length, value.length));
    }
    opts.opList.forEach((op, index) => {
      if (keys[index] !== null) markSent(op.context, index);
    });
    return { [list]: value };
  };
};

/**
 * The `headers` option of `httpLink`, `httpBatchLink` and `httpBatchStreamLink`: sends each mutation's key.
 * With one operation (`{ op }`, httpLink) it sets `Idempotency-Key`; with a batch (`{ opList }`) it sets
 * `Idempotency-Keys`, a JSON array indexed by position in the batch with `null` where a call has no key.
 * Returns `{}` when no call has a key. Compose it with your own headers by spreading both. For a server with
 * another `headerName`, use `createIdempotencyHeaders({ headerName })`.
 *
 * Throws, so the batch fails before anything is sent, when `Idempotency-Keys` would be longer than
 * `MAX_KEYS_HEADER_LENGTH` (4,096 bytes): servers and proxies refuse such request heads, some after the calls
 * ran. Bound batches with httpBatchLink's `maxItems` (100 calls with UUID keys take 3,901 bytes).
 *
 * @example
 * httpBatchLink({ url, maxItems: 100, headers: idempotencyHeaders })
 * httpBatchLink({ url, headers: (opts) => ({ authorization: token(), ...idempotencyHeaders(opts) }) })
 */
export const idempotencyHeaders: IdempotencyHeadersFn = createIdempotencyHeaders();

/** Why a batch was refused, with the fix. */
const batchTooLarge = (header: string, calls: number, length: number): string =>
  `trpc-idempotency: a batch of ${calls} calls needs a ${length}-byte ${header} request header, past the ` +
  `${MAX_KEYS_HEADER_LENGTH}-byte budget (servers refuse longer request heads: Node's default maxHeaderSize is 16 KB ` +
  'for the whole head, nginx allows 8 KB per header line). Nothing was sent. Set `maxItems` on httpBatchLink ' +
  '(100 calls fit with UUID keys), e.g. httpBatchLink({ url, maxItems: 100, headers: idempotencyHeaders }).';

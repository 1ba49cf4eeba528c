import type { Operation, OperationContext, TRPCLink } from '@trpc/client';
import { TRPCClientError } from '@trpc/client';
import type { AnyRouter } from '@trpc/server';
import { observable } from '@trpc/server/observable';
import { isValidKey, MAX_KEY_LENGTH, MAX_KEYS_HEADER_LENGTH, MAX_REPORTED_CALLS } from '../wire';
import { generateUuidV4 } from './generateKey';
import { batchPositionOf, wasBatchRefused, wasKeySent } from './headers';
import { readKeyStatus } from './responseStatus';
import type { IdempotencyWarning } from './types';
import { createWarnOnce } from './warnings';

/** What `onReplay` gets: one call whose outcome the server replayed from its store. */
export interface IdempotencyReplayEvent {
  key: string;
  op: Operation;
  /** The replayed error when the stored outcome was an error, else `undefined`. */
  error: TRPCClientError<any> | undefined;
}

export interface IdempotencyLinkOptions {
  /**
   * Makes the key of a mutation the caller gave none (`context.idempotencyKey`). Called once per operation; the
   * key must be 1 to 255 characters of visible ASCII.
   * @default a random UUID v4 (`crypto.randomUUID`, else built from `crypto.getRandomValues`)
   */
  generateKey?: (op: Operation) => string;
  /**
   * Which mutations get a key. Queries and subscriptions never do. Exclude mutations the server does not make
   * idempotent, or they trigger the `key_not_seen` warning.
   * @default every mutation
   */
  enabled?: (op: Operation) => boolean;
  /**
   * Called for each call the server answered with a stored outcome (success or error), once the call settles.
   * What it throws is logged with `console.error` and does not change the call's outcome.
   * @default no callback
   */
  onReplay?: (event: IdempotencyReplayEvent) => void;
  /**
   * Receives misconfiguration warnings, each code at most once per client. Throw from it to make them fatal
   * (e.g. in tests): the call that revealed the warning then fails with what you threw.
   * @default `console.warn`
   */
  onWarning?: (warning: IdempotencyWarning) => void;
}

/**
 * Gives every mutation one idempotency key, kept for all its retries, and reports replays per call through
 * `context.idempotency` and `onReplay`. Place it before `retryLink`; send keys with `headers: idempotencyHeaders`.
 *
 * The caller's context object is not modified: the link passes on a copy with `idempotencyKey` set (only the
 * `context.idempotency` info object is written to).
 *
 * @example
 * links: [idempotencyLink(), retryLink(idempotentRetry()), httpBatchLink({ url, headers: idempotencyHeaders })]
 */
export const idempotencyLink = <TRouter extends AnyRouter = AnyRouter>(
  options: IdempotencyLinkOptions = {},
): TRPCLink<TRouter> => {
  // config time: options resolved once
  const generateKey = assertFunction(options, 'generateKey') ?? generateUuidV4;
  const enabled = assertFunction(options, 'enabled') ?? (() => true);
  const onReplay = assertFunction(options, 'onReplay');
  assertFunction(options, 'onWarning');
  return () => {
    // app time: once per client
    const warn = createWarnOnce(options.onWarning);
    const keyedOps = new WeakMap<Operation, Operation>();
    return ({ op, next }) => {
      // request time: once per operation
      if (op.type !== 'mutation' || !enabled(op)) return next(op);
      return observable((observer) => {
        let keyed = keyedOps.get(op);
        try {
          if (keyed) {
            warn({ code: 'behind_retry', path: op.path, message: BEHIND_RETRY });
          } else {
            keyed = withKey(op, op.context.idempotencyKey ?? generateKey(op));
            keyedOps.set(op, keyed);
          }
        } catch (cause) {
          observer.error(toClientError(cause));
          return;
        }
        const { context } = keyed;
        const key = context.idempotencyKey as string;
        const info = context.idempotency;
        if (info) Object.assign(info, { key, replayed: null, status: null });

        /** Records what the server did with the key; returns what `onWarning` threw, if it threw. */
        const settle = (meta: unknown, error?: TRPCClientError<any>): unknown => {
          const found = readKeyStatus(meta, key, batchPositionOf(context));
          const status = found.kind === 'reported' ? found.status : null;
          const replayed = status !== null ? status === 'replayed' : found.kind === 'not_seen' ? false : null;
          if (info) Object.assign(info, { replayed, status });
          if (replayed && onReplay) {
            try {
              onReplay({ key, op, error });
            } catch (thrown) {
              console.error('trpc-idempotency: onReplay threw; the call is not affected', thrown);
            }
          }
          try {
            if (found.kind === 'no_response') {
              if (wasBatchRefused(context)) warn({ code: 'batch_too_large', path: op.path, message: BATCH_TOO_LARGE });
              return undefined;
            }
            if (found.kind === 'deferred') return undefined;
            if (!wasKeySent(context)) {
              warn({ code: 'headers_missing', path: op.path, message: HEADERS_MISSING });
            } else if (found.kind === 'omitted') {
              warn({ code: 'statuses_omitted', path: op.path, message: STATUSES_OMITTED });
            } else if (!error && found.kind === 'absent') {
              warn({ code: 'status_missing', path: op.path, message: STATUS_MISSING });
            } else if (!error && found.kind === 'not_seen') {
              warn({ code: 'key_not_seen', path: op.path, message: keyNotSeen(op.path) });
            }
          } catch (thrown) {
            return thrown;
          }
          return undefined;
        };

        let failed = false;
        const subscription = next(keyed).subscribe({
          next(envelope) {
            const thrown = settle(envelope.context);
            if (thrown === undefined) return observer.next(envelope);
            failed = true;
            observer.error(toClientError(thrown));
          },
          error(error) {
            if (failed) return;
            const thrown = settle(error.meta, error);
            observer.error(thrown === undefined ? error : toClientError(thrown));
          },
          complete() {
            if (!failed) observer.complete();
          },
        });
        return () => subscription.unsubscribe();
      });
    };
  };
};

// ---- internal helpers ----

const BEHIND_RETRY =
  'trpc-idempotency: idempotencyLink() saw the same operation twice, so a link before it retries calls. ' +
  'Put idempotencyLink() before retryLink() in `links` (the key was reused, so this retry stayed safe).';
const HEADERS_MISSING =
  'trpc-idempotency: a mutation with an idempotency key was sent without its key header. ' +
  'Add `headers: idempotencyHeaders` to your httpLink/httpBatchLink/httpBatchStreamLink ' +
  '(or spread `...idempotencyHeaders(opts)` into your own headers function).';
const STATUS_MISSING =
  'trpc-idempotency: a keyed mutation succeeded but the response has no Idempotency-Status header ' +
  '(Idempotency-Statuses on a batch), so replays cannot be detected and retries are not known to be safe. ' +
  'Either the server lacks `responseMeta: idempotencyResponseMeta()` on its tRPC HTTP handler, or the procedure ' +
  'lacks the idempotent() middleware (exclude such mutations with idempotencyLink({ enabled })). On another ' +
  'origin, make sure no proxy drops `Access-Control-Expose-Headers` (idempotencyResponseMeta() sets it for ' +
  'requests with an Origin).';
const STATUSES_OMITTED =
  'trpc-idempotency: the server did not report per-call idempotency statuses because the batch had more than ' +
  `${MAX_REPORTED_CALLS} calls (it keeps its response headers small), so replays in it cannot be detected ` +
  '(replayed: null). Set `maxItems` on httpBatchLink, e.g. 100.';
const BATCH_TOO_LARGE =
  `trpc-idempotency: a batch was not sent because its Idempotency-Keys header would pass ${MAX_KEYS_HEADER_LENGTH} ` +
  'bytes, which servers and proxies refuse. Set `maxItems` on httpBatchLink, e.g. ' +
  'httpBatchLink({ url, maxItems: 100, headers: idempotencyHeaders }) (100 calls fit with UUID keys).';
const keyNotSeen = (path: string): string =>
  `trpc-idempotency: the server ran mutation "${path}" without looking at its idempotency key, so retries may ` +
  'run it twice. Add the idempotent() middleware to that procedure, or exclude it with idempotencyLink({ enabled }).';

const toClientError = (cause: unknown): TRPCClientError<any> =>
  TRPCClientError.from(cause instanceof Error ? cause : new Error(String(cause)));

const withKey = (op: Operation, key: unknown): Operation => {
  if (!isValidKey(key)) {
    throw new Error(
      `trpc-idempotency: invalid idempotency key for "${op.path}": ${JSON.stringify(key)} ` +
        `(expected 1 to ${MAX_KEY_LENGTH} characters of visible ASCII)`,
    );
  }
  const info: unknown = op.context.idempotency;
  if (info !== undefined && (typeof info !== 'object' || info === null)) {
    throw new TypeError(`trpc-idempotency: context.idempotency must be an object the link can fill in (e.g. {}), got ${String(info)}`);
  }
  const context: OperationContext = { ...op.context, idempotencyKey: key };
  return { ...op, context };
};

const assertFunction = <TKey extends keyof IdempotencyLinkOptions>(
  options: IdempotencyLinkOptions,
  name: TKey,
): IdempotencyLinkOptions[TKey] => {
  const value = options[name];
  if (value !== undefined && typeof value !== 'function') {
    throw new TypeError(`trpc-idempotency: idempotencyLink option \`${name}\` must be a function`);
  }
  return value;
};

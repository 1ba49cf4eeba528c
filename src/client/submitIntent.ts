import type { OperationContext } from '@trpc/client';
import { isValidKey } from '../wire';
import { generateUuidV4 } from './generateKey';

/** One key per submit intent: see `createSubmitIntent`. */
export interface SubmitIntent {
  /**
   * The tRPC request context carrying the intent's key: pass it as `trpc: { context }` to `mutationOptions`
   * (`@trpc/tanstack-react-query`) or as `{ context }` to `.mutate()`. One object for the intent's lifetime;
   * `renew()` changes the key in it, so options built once keep sending the current key.
   */
  readonly context: OperationContext & { idempotencyKey: string };
  /** The current key. */
  readonly key: string;
  /**
   * Ends the intent: the next submit gets a new key. Call it when a submit succeeded (`onSuccess: intent.renew`)
   * and when the user changes what they submit. Not on an error: pressing again after a lost response must send
   * the same key, so the server replays instead of running twice.
   */
  renew: () => void;
}

export interface SubmitIntentOptions {
  /**
   * Makes each intent's key (1 to 255 characters of visible ASCII).
   * @default generateUuidV4
   */
  generateKey?: () => string;
}

/**
 * Keeps one idempotency key per submit intent, so a double click, a second press after a lost response, and
 * retries all send the same key and the server runs the mutation once. With `@trpc/tanstack-react-query`:
 *
 * @example
 * const [intent] = useState(() => createSubmitIntent());
 * const placeOrder = useMutation(trpc.order.create.mutationOptions({ trpc: { context: intent.context }, onSuccess: intent.renew }));
 */
export const createSubmitIntent = ({ generateKey = generateUuidV4 }: SubmitIntentOptions = {}): SubmitIntent => {
  const next = (): string => {
    const key = generateKey();
    if (!isValidKey(key)) {
      throw new TypeError(`trpc-idempotency: createSubmitIntent generateKey returned an invalid key ${JSON.stringify(key)} (1 to 255 characters of visible ASCII)`);
    }
    return key;
  };
  const context = { idempotencyKey: next() };
  return {
    context,
    get key() {
      return context.idempotencyKey;
    },
    renew: () => {
      context.idempotencyKey = next();
    },
  };
};

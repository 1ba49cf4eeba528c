import { IdempotencyError } from '../errors';
import type { RequestHeaders } from './headers';
import type { KeyHeaderNames } from './key';
import { keyFromHeaders, validateKey } from './key';
import type { ResolvedGlobalOptions } from './options';

export interface KeyCall {
  ctx: unknown;
  path: string;
  batchIndex: number;
  getRawInput: () => Promise<unknown>;
}

/**
 * The call's key: from `getKey` when set, else the `inputKey` field, else the request headers. The middleware
 * reads the headers itself, without this function's await, when neither `getKey` nor `inputKey` is set.
 */
export const resolveKey = async (
  call: KeyCall,
  options: ResolvedGlobalOptions,
  { request, names }: { request: RequestHeaders | undefined; names: KeyHeaderNames },
): Promise<string | undefined> => {
  if (options.getKey) {
    const value = await options.getKey({ ctx: call.ctx, rawInput: await call.getRawInput(), path: call.path, batchIndex: call.batchIndex });
    return value === undefined || value === null ? undefined : validateKey(value, 'the key returned by getKey');
  }
  if (options.inputKey) {
    const raw = await call.getRawInput();
    if (typeof raw === 'object' && raw !== null && options.inputKey in raw) {
      const value = (raw as Record<string, unknown>)[options.inputKey];
      if (value !== undefined && value !== null) return validateKey(value, `input field "${options.inputKey}"`);
    }
  }
  return request ? keyFromHeaders(request, names, call.batchIndex) : undefined;
};

/**
 * The error for a mutation that came without a key under `required: true`, naming where a key is read. `noHeaders`:
 * ctx held no request headers, so a header the client sent was never seen; the message says so.
 */
export const keyMissing = (path: string, options: ResolvedGlobalOptions, noHeaders: boolean): IdempotencyError => {
  const where = options.getKey
    ? 'from getKey'
    : options.inputKey
      ? `in the ${options.headerName} header or input field "${options.inputKey}"`
      : `in the ${options.headerName} header`;
  const hint =
    noHeaders && !options.getKey ? ' (the server cannot read it: its ctx holds no request headers; put the request in ctx)' : '';
  return new IdempotencyError('KEY_MISSING', `mutation "${path}" requires an idempotency key ${where}${hint}`);
};

/**
 * The warning for a procedure whose calls can never carry a key: ctx holds no request headers and neither
 * `getKey` nor `inputKey` is set, so every call runs unguarded and a retry runs it again.
 */
export const noHeadersWarning = (path: string): string =>
  `trpc-idempotency: mutation "${path}" runs unguarded: its ctx holds no request headers (ctx.req, ctx.request or ` +
  'ctx.headers) and neither getKey nor inputKey is set, so it can never see an idempotency key and a retry runs it ' +
  'again. Put the request in ctx (createContext: ({ req }) => ({ req, ... })) or set getKey or inputKey. ' +
  'Each such call emits an `unguarded` event.';

/**
 * An OpenTelemetry context manager on Node's AsyncLocalStorage: what makes `trace.getActiveSpan()` find the
 * request's span inside `onEvent`, across the awaits between the request and the event.
 *
 * In your app, `@opentelemetry/sdk-node` (NodeSDK) or `@opentelemetry/context-async-hooks`
 * (AsyncLocalStorageContextManager) registers one for you: you do not need this file.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Context, ContextManager } from '@opentelemetry/api';
import { ROOT_CONTEXT } from '@opentelemetry/api';

export const asyncLocalStorageContextManager = (): ContextManager => {
  const storage = new AsyncLocalStorage<Context>();
  const manager: ContextManager = {
    active: () => storage.getStore() ?? ROOT_CONTEXT,
    // The signature is ContextManager's: four parameters, as the OpenTelemetry API declares it.
    // eslint-disable-next-line max-params
    with: (context, fn, thisArg, ...args) => storage.run(context, () => fn.call(thisArg, ...args)),
    bind: <T>(context: Context, target: T): T => {
      if (typeof target !== 'function') return target;
      const fn = target as (...args: unknown[]) => unknown;
      return function (this: unknown, ...args: unknown[]) {
        return storage.run(context, () => fn.apply(this, args));
      } as T;
    },
    enable: () => manager,
    disable: () => {
      storage.disable();
      return manager;
    },
  };
  return manager;
};

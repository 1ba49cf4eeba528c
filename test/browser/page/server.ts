import type { ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { createFormApp } from '../../../examples/react-form/server';
import { listenLocal } from '../../../examples/shared/listen';

/**
 * How a response is lost. `before-head`: the connection closes before any byte of the answer, as when a proxy
 * times out; Chromium then re-sends the request by itself when it went out on a reused keep-alive connection (5 of 5
 * probes with retryLink off).
 * `mid-body`: the status line and headers arrive, then the connection breaks in the body; no browser re-sends that,
 * so the page sees a network error.
 */
export type DropMode = 'before-head' | 'mid-body';

/**
 * Serves the React form example on loopback with a test hook: `dropNextResponse()` makes the next `order.create`
 * run to the end (the order is written and its result stored) and then breaks the connection instead of answering.
 */
export const startPageServer = async () => {
  const { listener, orders } = await createFormApp({ entry: fileURLToPath(new URL('./main.tsx', import.meta.url)) });
  const counts = { createRequests: 0, dropped: 0 };
  let dropArmed: DropMode | undefined;

  const server = createServer((req, res) => {
    if (req.url?.startsWith('/trpc/order.create')) {
      counts.createRequests++;
      if (dropArmed) {
        breakResponse(res, dropArmed, () => counts.dropped++);
        dropArmed = undefined;
      }
    }
    listener(req, res);
  });
  const { url, close } = await listenLocal(server, 0);
  return {
    url,
    orders,
    counts,
    dropNextResponse: (mode: DropMode) => {
      dropArmed = mode;
    },
    close,
  };
};

// ---- internal helpers ----

/** tRPC writes the response only after the procedure and the idempotency middleware have finished. */
const breakResponse = (res: ServerResponse, mode: DropMode, onDropped: () => void): void => {
  const write = res.write.bind(res) as (chunk: unknown, callback: () => void) => boolean;
  let dropped = false;
  const drop = (chunk?: unknown) => {
    if (dropped) return true;
    dropped = true;
    onDropped();
    if (mode === 'before-head') {
      res.socket?.destroy();
      return true;
    }
    // Head and a few body bytes out, then the connection breaks.
    const text = chunk === undefined ? '' : typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString();
    return write(text.slice(0, 5) || ' ', () => res.socket?.destroy());
  };
  res.write = drop as unknown as typeof res.write;
  res.end = ((chunk?: unknown) => (drop(typeof chunk === 'function' ? undefined : chunk), res)) as typeof res.end;
};

/**
 * Serves the fetch handler from `handler.ts` on Node's HTTP server, converting each request to a Fetch `Request`
 * and the `Response` back. On Next.js, Bun or Deno you skip this file: the platform calls the handler itself.
 * Run: `npx tsx examples/fetch/server.ts` (tRPC at http://127.0.0.1:3000/api/trpc).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { OrderAppOptions } from '../shared/orders';
import { listenLocal } from '../shared/listen';
import { isMain } from '../shared/orders';
import { createFetchHandler, ENDPOINT } from './handler';

export const start = async (port = 3000, options: OrderAppOptions = {}) => {
  const { handler, orders } = createFetchHandler(options);
  const server = createServer((req, res) => {
    handler(toRequest(req))
      .then((response) => sendResponse(response, res))
      .catch((error: unknown) => res.destroy(error instanceof Error ? error : new Error(String(error))));
  });
  const { url, close } = await listenLocal(server, port);
  return { url: `${url}${ENDPOINT}`, orders, close };
};

const toRequest = (req: IncomingMessage): Request => {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.set(name, value);
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  return new Request(new URL(req.url ?? '/', `http://${req.headers.host ?? '127.0.0.1'}`), {
    method: req.method,
    headers,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined,
    // Node's fetch needs this for a streamed request body.
    duplex: 'half',
  } as RequestInit);
};

const sendResponse = (response: Response, res: ServerResponse): void => {
  res.statusCode = response.status;
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') res.setHeader(name, value);
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader('set-cookie', cookies);
  if (!response.body) {
    res.end();
    return;
  }
  Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>).pipe(res);
};

if (isMain(import.meta.url)) {
  const { url } = await start(Number(process.env.PORT ?? 3000));
  console.log(`fetch example listening on ${url}`);
}

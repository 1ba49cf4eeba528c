/**
 * Serves the React form on one origin: the page, its script (bundled on start with esbuild) and the tRPC API at
 * `/trpc`. Run: `npx tsx examples/react-form/server.ts`, open http://127.0.0.1:3000 and double-click "Place order".
 * Add `?retry=0` to the address to turn retryLink off and see a lost response handled by pressing again.
 */
import type { RequestListener } from 'node:http';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { build } from 'esbuild';
import { idempotencyResponseMeta } from 'trpc-idempotency';
import type { OrderAppOptions } from '../shared/orders';
import { listenLocal } from '../shared/listen';
import { createOrderApp, isMain, userIdFrom } from '../shared/orders';

export interface FormAppOptions extends OrderAppOptions {
  /** Script that exports `mount(element, { url, retry })`. @default examples/react-form/main.tsx */
  entry?: string;
}

/** Bundles a browser entry into one ES module. */
export const bundle = async (entry: string): Promise<string> => {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    minify: true,
    write: false,
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  const [output] = result.outputFiles;
  if (!output) throw new Error(`esbuild produced no output for ${entry}`);
  return output.text;
};

const PAGE = `<!doctype html>
<html lang="en">
  <head><meta charset="utf-8"><title>Place an order</title></head>
  <body>
    <div id="root"></div>
    <script type="module">
      import { mount } from '/app.js';
      const retry = new URLSearchParams(location.search).get('retry') !== '0';
      mount(document.getElementById('root'), { url: '/trpc', retry });
    </script>
  </body>
</html>
`;

/** The request listener (page, script, API) and the order table. */
export const createFormApp = async ({ entry = fileURLToPath(new URL('./main.tsx', import.meta.url)), ...options }: FormAppOptions = {}) => {
  // A double click's second request arrives while the first runs: wait for its result instead of answering CONFLICT.
  const { router, orders } = createOrderApp({ onInProgress: 'wait', ...options });
  const script = await bundle(entry);
  const trpc = createHTTPHandler({
    router,
    basePath: '/trpc/',
    createContext: ({ req }) => ({ req, userId: userIdFrom(req.headers['x-user-id']) }),
    responseMeta: idempotencyResponseMeta(),
  });
  const listener: RequestListener = (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path.startsWith('/trpc/')) return void trpc(req, res);
    const [type, body] =
      path === '/' ? ['text/html; charset=utf-8', PAGE] : path === '/app.js' ? ['text/javascript; charset=utf-8', script] : [];
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
  };
  return { listener, orders };
};

export const start = async (port = 3000, options: FormAppOptions = {}) => {
  const { listener, orders } = await createFormApp(options);
  return { ...(await listenLocal(createServer(listener), port)), orders };
};

if (isMain(import.meta.url)) {
  const { url } = await start(Number(process.env.PORT ?? 3000));
  console.log(`react form example on ${url}`);
}

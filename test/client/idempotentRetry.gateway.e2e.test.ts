import type { Server } from 'node:http';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AnyRouter } from '@trpc/server';
import { createTRPCClient, httpBatchLink, httpLink, retryLink } from '@trpc/client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { idempotencyHeaders, idempotencyLink, idempotentRetry } from '../../src/client/index';

/**
 * A gateway in front of a tRPC server that fails every request it is sent, the way a proxy or load balancer does
 * when its upstream crashed or timed out: the upstream may have run the procedure before it failed.
 */
const startFailingGateway = async (answer: 'html' | 'empty' | 'json' | 'drop') => {
  const seen: string[] = [];
  const server: Server = createServer((req, res) => {
    seen.push(String(req.headers['idempotency-key'] ?? req.headers['idempotency-keys']));
    if (answer === 'drop') {
      req.socket.destroy();
      return;
    }
    const body = { html: '<html><body><h1>502 Bad Gateway</h1></body></html>', empty: '', json: '{"message":"Bad Gateway"}' }[answer];
    res.writeHead(502, { 'content-type': answer === 'json' ? 'application/json' : 'text/html' }).end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const close = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return { url: `http://127.0.0.1:${port}`, seen, close };
};

let gateway: Awaited<ReturnType<typeof startFailingGateway>> | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

const clientThrough = (url: string, batch: boolean) => {
  const onWarning = vi.fn();
  const terminal = batch ? httpBatchLink({ url, headers: idempotencyHeaders }) : httpLink({ url, headers: idempotencyHeaders });
  const client = createTRPCClient<AnyRouter>({
    links: [
      idempotencyLink({ onWarning }),
      retryLink(idempotentRetry({ maxAttempts: 3, baseDelayMs: 0, onWarning })),
      terminal,
    ],
  });
  const mutate = (input: unknown) => (client as any).order.create.mutate(input) as Promise<unknown>;
  return { mutate, onWarning };
};

describe('idempotentRetry behind a gateway that answers for a failed upstream', () => {
  for (const batch of [false, true]) {
    const link = batch ? 'httpBatchLink' : 'httpLink';

    it(`does not retry a 502 with an HTML, empty or JSON body that is no tRPC error (${link}): nothing shows the key was handled`, async () => {
      for (const answer of ['html', 'empty', 'json'] as const) {
        gateway = await startFailingGateway(answer);
        const { mutate, onWarning } = clientThrough(gateway.url, batch);
        await expect(mutate({ n: 1 })).rejects.toThrow();
        expect({ answer, requests: gateway.seen.length }).toEqual({ answer, requests: 1 });
        expect(onWarning).not.toHaveBeenCalled();
        await gateway.close();
        gateway = undefined;
      }
    });

    it(`retries with the same key when the connection drops without a response (${link})`, async () => {
      gateway = await startFailingGateway('drop');
      const { mutate } = clientThrough(gateway.url, batch);
      await expect(mutate({ n: 1 })).rejects.toThrow();
      expect(gateway.seen).toHaveLength(3);
      expect(new Set(gateway.seen).size).toBe(1);
    });
  }
});

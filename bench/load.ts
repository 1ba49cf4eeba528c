import { Agent, request } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import superjson from 'superjson';
import { idempotencyResponseMeta } from '../src/index';
import type { BenchApp, BenchContext } from './app';
import { ORDER_INPUT } from './app';

/** One call of one procedure with one key; rejects on anything but the expected order. */
export type CallFn = (key: string) => Promise<void>;

export interface Window {
  ops: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * A closed loop: `concurrency` workers each call, await, call again until `durationMs` has passed. Latency is
 * measured per call; throughput is calls over wall time, tail included.
 */
export const runWindow = async (
  call: CallFn,
  nextKey: (seq: number) => string,
  { concurrency, durationMs }: { concurrency: number; durationMs: number },
): Promise<Window> => {
  const latencies: number[] = [];
  let seq = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const key = nextKey(seq++);
      const t0 = performance.now();
      await call(key);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - start;
  latencies.sort((a, b) => a - b);
  return {
    ops: latencies.length,
    opsPerSec: (latencies.length / elapsedMs) * 1000,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
  };
};

export const quantile = (sorted: readonly number[], q: number): number => {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
};

export const median = (values: readonly number[]): number => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** In-process: a caller per call (its ctx carries the key), the same for every variant. */
export const inProcessCall = (app: BenchApp, path: string): CallFn => {
  return async (key) => {
    const caller = app.createCaller({ key }) as unknown as Record<string, (input: unknown) => Promise<{ total: number }>>;
    const result = await (caller[path] as (input: unknown) => Promise<{ total: number }>)(ORDER_INPUT);
    if (result.total !== 42) throw new Error(`bench: ${path} returned ${JSON.stringify(result)}`);
  };
};

export interface HttpTarget {
  port: number;
  call(path: string): CallFn;
  close(): Promise<void>;
}

/**
 * The tRPC standalone adapter on 127.0.0.1:0 (wired as users wire it) and a raw keep-alive node:http client
 * (less client overhead than @trpc/client, so the server's share shows), the same for every variant.
 */
export const startHttp = async (app: BenchApp, maxSockets: number): Promise<HttpTarget> => {
  const server: Server = createHTTPServer({
    router: app.router,
    createContext: ({ req }): BenchContext => ({ req }),
    responseMeta: idempotencyResponseMeta(),
  });
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const agent = new Agent({ keepAlive: true, maxSockets, keepAliveMsecs: 60_000 });
  const body = JSON.stringify(superjson.serialize(ORDER_INPUT));
  const length = String(Buffer.byteLength(body));

  const call =
    (path: string): CallFn =>
    (key) =>
      new Promise<void>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: `/${path}`,
            agent,
            headers: { 'content-type': 'application/json', 'content-length': length, 'idempotency-key': key },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => {
              const parsed = JSON.parse(text) as { result?: { data?: { json?: { total?: number } } } };
              if (res.statusCode === 200 && parsed.result?.data?.json?.total === 42) resolve();
              else reject(new Error(`bench: POST /${path} -> ${String(res.statusCode)} ${text.slice(0, 300)}`));
            });
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(body);
      });

  return {
    port,
    call,
    close: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};

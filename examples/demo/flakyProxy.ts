import { createServer, request } from 'node:http';
import { listenLocal } from '../shared/listen';

export interface FlakyProxyOptions {
  /** Where requests go. */
  target: URL;
  /** Share of responses dropped after the server answered (the mutation already ran). */
  dropRate: number;
  /** Random source in [0, 1). */
  random: () => number;
}

export interface FlakyProxy {
  url: string;
  stats: { requests: number; dropped: number };
  close(): Promise<void>;
}

/**
 * An HTTP hop that loses responses: it forwards each request to the server, waits for the whole answer, then
 * with probability `dropRate` destroys the client's socket instead of passing the answer on. This is the
 * mobile network or load balancer that makes a client retry a request the server already ran.
 */
export const startFlakyProxy = async ({ target, dropRate, random }: FlakyProxyOptions): Promise<FlakyProxy> => {
  const stats = { requests: 0, dropped: 0 };
  const server = createServer((req, res) => {
    stats.requests++;
    const upstream = request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => {
          if (random() < dropRate) {
            stats.dropped++;
            req.socket.destroy();
            return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(chunks));
        });
      },
    );
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 1000;
  return { ...(await listenLocal(server, 0)), stats };
};

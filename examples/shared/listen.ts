import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Listening {
  /** Base URL, e.g. `http://127.0.0.1:3000`. */
  url: string;
  /** Closes the server and its keep-alive connections. */
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (`port` 0 picks a free one) and says where, and how to stop. */
export const listenLocal = async (server: Server, port: number): Promise<Listening> => {
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

import type { Cluster, Redis } from 'ioredis';
import type { WaitOutcome, WaitRequest } from '../store';
import type { PeekOutcome } from './replies';
import { withDeadline } from './deadline';

export interface WaitHubOptions {
  client: Redis | Cluster;
  /** Pub/sub channel of a record: its full Redis key (complete.lua and release.lua publish there). */
  channelOf(id: string): string;
  /** Reads the record (one round trip, bounded). */
  peek(id: string): Promise<PeekOutcome>;
  pollIntervalMs: number;
  operationTimeoutMs: number;
}

export interface WaitHub {
  wait(request: WaitRequest): Promise<WaitOutcome>;
  /** Ends every wait (as `timeout`) and closes the subscriber connection, if one was opened. */
  close(): Promise<void>;
  /** Keys watched right now (each has one subscription and one timer, however many wait on it). */
  watchedKeys(): number;
}

/**
 * Waiting, shared per key per process: the first waiter on a key subscribes to the record's channel on one
 * subscriber connection (a `duplicate()` of the client, opened lazily and closed after a minute without
 * waiters), then reads the record once; later waiters on that key just join. The watch ends when a message
 * arrives (complete/release publish), or when a read finds the record settled. Reads are scheduled at the
 * lease end (to wake when the owner crashed) and at least every `pollIntervalMs` (a missed message).
 *
 *   waiter 1 ──┐ join       SUBSCRIBE ─ peek ─ (timer: lease end / poll) ─ peek ... ─┐
 *   waiter 2 ──┤                                                                      ├─> settled
 *   waiter N ──┘            <message on the record's channel> ────────────────────────┘
 */
export const createWaitHub = (options: WaitHubOptions): WaitHub => {
  const { client, channelOf, peek, pollIntervalMs, operationTimeoutMs } = options;
  const watches = new Map<string, Watch>();
  let subscriber: Redis | Cluster | undefined;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;

  const subscriberConnection = (): Redis | Cluster => {
    if (subscriber) return subscriber;
    // The offline queue lets the first SUBSCRIBE wait for the new connection (calls stay bounded by the deadline),
    // even when your client runs without one.
    const connection = client.isCluster
      ? (client as Cluster).duplicate([], { enableOfflineQueue: true })
      : (client as Redis).duplicate({ enableOfflineQueue: true });
    connection.on('error', () => {
      // Reported through the calls that fail; ioredis reconnects and resubscribes on its own.
    });
    connection.on('message', (channel: string) => {
      const watch = watches.get(channel);
      if (watch) finish(watch, { status: 'settled' });
    });
    subscriber = connection;
    // The subscriber goes when your client goes.
    client.once('end', closeAll);
    return connection;
  };

  const closeSubscriber = (): void => {
    clearTimeout(idleTimer);
    client.off('end', closeAll);
    subscriber?.disconnect();
    subscriber = undefined;
  };

  function closeAll(): void {
    for (const watch of [...watches.values()]) finish(watch, { status: 'timeout' });
    closeSubscriber();
  }

  const finish = (watch: Watch, outcome: WaitOutcome | { error: unknown }): void => {
    if (watch.closed) return;
    watch.closed = true;
    clearTimeout(watch.timer);
    watches.delete(watch.channel);
    for (const waiter of watch.waiters) waiter(outcome);
    const connection = subscriber;
    if (connection && watch.subscribed) {
      withDeadline(connection, { op: 'unsubscribe', timeoutMs: operationTimeoutMs }, () =>
        connection.unsubscribe(watch.channel),
      ).catch(() => {
        // A subscriber that lost this channel anyway; nothing to do.
      });
    }
    if (watches.size === 0) {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(closeSubscriber, SUBSCRIBER_IDLE_MS);
      idleTimer.unref?.();
    }
  };

  const check = async (watch: Watch): Promise<void> => {
    const outcome = await peek(watch.id);
    if (watch.closed) return;
    if (outcome.status === 'settled') return finish(watch, outcome);
    watch.timer = setTimeout(() => {
      check(watch).catch((error: unknown) => finish(watch, { error }));
    }, Math.min(outcome.leaseLeftMs + 1, pollIntervalMs));
    watch.timer.unref?.();
  };

  const start = async (watch: Watch): Promise<void> => {
    clearTimeout(idleTimer);
    const connection = subscriberConnection();
    watch.subscribed = true;
    await withDeadline(connection, { op: 'subscribe', timeoutMs: operationTimeoutMs }, () =>
      connection.subscribe(watch.channel),
    );
    if (!watch.closed) await check(watch);
  };

  const wait = (request: WaitRequest): Promise<WaitOutcome> =>
    new Promise<WaitOutcome>((resolve, reject) => {
      const { signal } = request;
      if (signal?.aborted) return resolve({ status: 'timeout' });
      const channel = channelOf(request.id);
      const existing = watches.get(channel);
      const watch: Watch = existing ?? { id: request.id, channel, waiters: new Set(), closed: false, subscribed: false };

      const waiter: Waiter = (outcome) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', giveUp);
        watch.waiters.delete(waiter);
        if ('error' in outcome) reject(outcome.error);
        else resolve(outcome);
      };
      function giveUp(): void {
        waiter({ status: 'timeout' });
        if (watch.waiters.size === 0) finish(watch, { status: 'timeout' });
      }
      const timer = setTimeout(giveUp, Math.max(0, request.timeoutMs));
      timer.unref?.();
      signal?.addEventListener('abort', giveUp, { once: true });
      watch.waiters.add(waiter);

      if (!existing) {
        watches.set(channel, watch);
        start(watch).catch((error: unknown) => finish(watch, { error }));
      }
    });

  return {
    wait,
    close: async () => closeAll(),
    watchedKeys: () => watches.size,
  };
};

// ---- internal helpers ----

/** The subscriber connection is closed after this long without anything to wait for. */
const SUBSCRIBER_IDLE_MS = 60_000;

type Waiter = (outcome: WaitOutcome | { error: unknown }) => void;

interface Watch {
  id: string;
  channel: string;
  waiters: Set<Waiter>;
  timer?: ReturnType<typeof setTimeout> | undefined;
  closed: boolean;
  subscribed: boolean;
}

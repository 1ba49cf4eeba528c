import type { Notification, Pool, PoolClient } from 'pg';
import type { WaitOutcome, WaitRequest } from '../../store';
import type { PeekOutcome } from './replies';
import { explain, unavailable } from './boundedQuery';

export interface WaitHubOptions {
  pool: Pool;
  /** The table's NOTIFY channel (complete and release notify there, payload the record id). */
  channel: string;
  /** Reads the record (one round trip, bounded). */
  peek(id: string): Promise<PeekOutcome>;
  pollIntervalMs: number;
  operationTimeoutMs: number;
}

export interface WaitHub {
  wait(request: WaitRequest): Promise<WaitOutcome>;
  /** Ends every wait (as `timeout`) and closes the listening connection, if one is open. */
  close(): Promise<void>;
  /** Keys watched right now (each has one timer and one read at a time, however many wait on it). */
  watchedKeys(): number;
}

/**
 * Waiting, shared per key per process, on one `LISTEN` connection per store: a connection of your pool, held
 * while anything waits and for a minute after, then closed (never handed back still listening). The first
 * waiter on a key makes sure the store listens, then reads the record once; later waiters on that key just join.
 * A watch ends when a notification names its id, or when a read finds the record settled. Reads are scheduled
 * at the lease end (to wake when the owner crashed) and at least every `pollIntervalMs` (a notification missed
 * while the connection was broken).
 *
 *   waiter 1 ──┐ join      LISTEN (once) ─ peek ─ (timer: lease end / poll) ─ peek ... ─┐
 *   waiter N ──┘           <NOTIFY channel, payload id> ─────────────────────────────────┴─> settled
 */
export const createWaitHub = (options: WaitHubOptions): WaitHub => {
  const { pool, channel, peek, pollIntervalMs, operationTimeoutMs } = options;
  const watches = new Map<string, Watch>();
  let listening: Promise<Listener> | undefined;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;

  const onNotification = (message: Notification): void => {
    if (message.channel !== channel || message.payload === undefined) return;
    const watch = watches.get(message.payload);
    if (watch) finish(watch, { status: 'settled' });
  };

  /** The listening connection: opened (checkout + LISTEN, bounded together) on first use, reused after. */
  const listen = (): Promise<Listener> => {
    if (listening) return listening;
    const attempt = openListener(pool, channel, operationTimeoutMs).then((client) => {
      let dropped = false;
      const drop = (error?: Error): void => {
        if (dropped) return;
        dropped = true;
        client.off('notification', onNotification);
        client.off('error', drop);
        client.off('end', ended);
        client.on('error', ignore); // a late socket error of a connection given up must not crash the process
        if (listening === attempt) listening = undefined;
        // Destroyed, not returned: a pooled connection must not keep listening. Watches go on polling, and
        // the next read listens again on a new connection.
        client.release(error ?? true);
      };
      const ended = (): void => drop(new Error('connection ended'));
      client.on('notification', onNotification);
      client.on('error', drop);
      client.on('end', ended);
      return { drop: () => drop() };
    });
    listening = attempt;
    attempt.catch(() => {
      if (listening === attempt) listening = undefined;
    });
    return attempt;
  };

  const closeConnection = (): void => {
    clearTimeout(idleTimer);
    const current = listening;
    if (!current) return;
    listening = undefined;
    current.then(
      (listener) => listener.drop(),
      () => {},
    );
  };

  const finish = (watch: Watch, outcome: WaitOutcome | { error: unknown }): void => {
    if (watch.closed) return;
    watch.closed = true;
    clearTimeout(watch.timer);
    watches.delete(watch.id);
    for (const waiter of watch.waiters) waiter(outcome);
    if (watches.size === 0) {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(closeConnection, LISTENER_IDLE_MS);
      idleTimer.unref?.();
    }
  };

  const check = async (watch: Watch): Promise<void> => {
    // Listen again first if the connection broke since the last read: no notification is missed after this.
    await listen();
    if (watch.closed) return;
    const outcome = await peek(watch.id);
    if (watch.closed) return;
    if (outcome.status === 'settled') return finish(watch, outcome);
    watch.timer = setTimeout(() => {
      check(watch).catch((error: unknown) => finish(watch, { error }));
    }, Math.min(outcome.leaseLeftMs + 1, pollIntervalMs));
    watch.timer.unref?.();
  };

  const wait = (request: WaitRequest): Promise<WaitOutcome> =>
    new Promise<WaitOutcome>((resolve, reject) => {
      const { signal, id } = request;
      if (signal?.aborted) return resolve({ status: 'timeout' });
      const existing = watches.get(id);
      const watch: Watch = existing ?? { id, waiters: new Set(), closed: false };

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
        watches.set(id, watch);
        clearTimeout(idleTimer);
        check(watch).catch((error: unknown) => finish(watch, { error }));
      }
    });

  return {
    wait,
    close: async () => {
      for (const watch of [...watches.values()]) finish(watch, { status: 'timeout' });
      closeConnection();
    },
    watchedKeys: () => watches.size,
  };
};

// ---- internal helpers ----

/** The listening connection is closed after this long without anything to wait for. */
const LISTENER_IDLE_MS = 60_000;

/** Checks a connection out and sends LISTEN, both within `timeoutMs`; a connection that comes late is closed. */
const openListener = (pool: Pool, channel: string, timeoutMs: number): Promise<PoolClient> =>
  new Promise<PoolClient>((resolve, reject) => {
    let done = false;
    let client: PoolClient | undefined;
    const fail = (error: unknown, message: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client?.release(true);
      reject(unavailable(message, error, timeoutMs));
    };
    const timer = setTimeout(
      () => fail(undefined, `postgres listen got no answer within ${timeoutMs} ms (operationTimeoutMs)`),
      timeoutMs,
    );
    timer.unref?.();
    pool.connect().then(
      (connected) => {
        if (done) return connected.release(true);
        client = connected;
        // A socket error before LISTEN answers rejects the query; this keeps it from crashing the process.
        connected.on('error', ignore);
        connected.query(`LISTEN "${channel}"`).then(
          () => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            connected.off('error', ignore);
            resolve(connected);
          },
          (error: unknown) => fail(error, `postgres listen failed: ${explain(error)}`),
        );
      },
      (error: unknown) => fail(error, `postgres listen failed: ${explain(error)}`),
    );
  });

const ignore = (): void => {};

interface Listener {
  /** Stops listening and closes the connection. */
  drop(): void;
}

type Waiter = (outcome: WaitOutcome | { error: unknown }) => void;

interface Watch {
  id: string;
  waiters: Set<Waiter>;
  timer?: ReturnType<typeof setTimeout> | undefined;
  closed: boolean;
}

import type { Clock, TimerHandle } from '../clock';

export interface ManualClock extends Clock {
  /** Move time forward by `ms`, firing every timer that falls due, in order; lets promise callbacks run. */
  advance(ms: number): Promise<void>;
  /** Timers still pending. */
  pending(): number;
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that only moves when told to: pass it as `clock` to `createIdempotency` and `createMemoryStore` (or your
 * own store), then `await clock.advance(ms)` instead of sleeping. `start` is the initial epoch time in ms.
 *
 * @example
 * const clock = createManualClock();
 * const { idempotent } = createIdempotency({ clock, store: createMemoryStore({ clock }) });
 * await clock.advance(30_000); // leases of 30 s expire now, without a real wait
 */
export const createManualClock = (start = 1_700_000_000_000): ManualClock => {
  let now = start;
  let seq = 0;
  const timers = new Set<Timer>();
  const flush = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
    await new Promise<void>((resolve) => setImmediate(resolve));
  };
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      const timer: Timer = { at: now + Math.max(0, ms), seq: seq++, fn };
      timers.add(timer);
      return timer as TimerHandle;
    },
    clearTimeout: (handle) => {
      timers.delete(handle as Timer);
    },
    pending: () => timers.size,
    advance: async (ms) => {
      const target = now + ms;
      await flush();
      for (;;) {
        const due = [...timers].filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
        if (!due) break;
        timers.delete(due);
        now = Math.max(now, due.at);
        due.fn();
        await flush();
      }
      now = target;
      await flush();
    },
  };
};

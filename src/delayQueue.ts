import type { Clock, TimerHandle } from './clock';

/** Many callbacks due a fixed delay after they were added, on one timer. */
export interface DelayQueue {
  /** Runs `fn` `delayMs` from now, unless the returned function is called first. `fn` must not throw. */
  add(fn: () => void): () => void;
}

/**
 * One queue per clock and delay, shared by every caller: a timer per lease or per Redis call costs more than
 * the rest of the work on a busy HTTP server (Node's timer lists are created, scheduled and torn down each time),
 * while a shared queue arms a timer about once per `delayMs`.
 */
export const delayQueue = (clock: Clock, delayMs: number): DelayQueue => {
  let byDelay = queues.get(clock);
  if (!byDelay) queues.set(clock, (byDelay = new Map()));
  let queue = byDelay.get(delayMs);
  if (!queue) byDelay.set(delayMs, (queue = createDelayQueue(clock, delayMs)));
  return queue;
};

// ---- internal helpers ----

const queues = new WeakMap<Clock, Map<number, DelayQueue>>();

interface Entry {
  at: number;
  fn: () => void;
}

/**
 * Entries share one delay, so insertion order is due order: the timer serves the head and stops at the first
 * entry not yet due. A cancelled entry just leaves the set; the timer then fires once for nothing and stops
 * (or moves on to the next entry), so it outlives the last entry by at most `delayMs`, unref'd.
 */
const createDelayQueue = (clock: Clock, delayMs: number): DelayQueue => {
  const entries = new Set<Entry>();
  let timer: TimerHandle | undefined;
  let armedAt = Number.POSITIVE_INFINITY;

  const arm = (at: number): void => {
    armedAt = at;
    timer = clock.setTimeout(fire, Math.max(0, at - clock.now()));
  };
  const fire = (): void => {
    timer = undefined;
    armedAt = Number.POSITIVE_INFINITY;
    const now = clock.now();
    for (const entry of entries) {
      if (entry.at > now) return arm(entry.at);
      entries.delete(entry);
      entry.fn();
    }
  };

  return {
    add: (fn) => {
      const entry: Entry = { at: clock.now() + delayMs, fn };
      entries.add(entry);
      // Earlier than the armed time only if the clock went back: re-arm rather than fire late.
      if (entry.at < armedAt) {
        if (timer !== undefined) clock.clearTimeout(timer);
        arm(entry.at);
      }
      return () => {
        entries.delete(entry);
      };
    },
  };
};

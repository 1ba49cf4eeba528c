import type { Clock, TimerHandle } from './clock';
import { intervalTime } from './clock';

/** Many callbacks due a fixed delay after they were added, on one timer. */
export interface DelayQueue {
  /** Runs `fn` `delayMs` from now, unless the returned function is called first. */
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
 *
 * Due times are read with `intervalTime` (never jumps for the system clock). If an injected clock goes back
 * anyway, an entry is late by at most `delayMs`, and none is held up for longer.
 */
const createDelayQueue = (clock: Clock, delayMs: number): DelayQueue => {
  const now = intervalTime(clock);
  const entries = new Set<Entry>();
  let timer: TimerHandle | undefined;
  let armedAt = Number.POSITIVE_INFINITY;

  const arm = (at: number): void => {
    if (timer !== undefined) clock.clearTimeout(timer);
    armedAt = at;
    timer = clock.setTimeout(fire, Math.max(0, at - now()));
  };
  const fire = (): void => {
    timer = undefined;
    armedAt = Number.POSITIVE_INFINITY;
    const firedAt = now();
    try {
      for (const entry of entries) {
        // Due more than a delay ahead cannot happen on a clock that only moves forward: the clock went back, or
        // the entry was made under fake timers. Run it now (early is safe for a renewal or a deadline) rather
        // than let it hold up everything behind it.
        if (entry.at > firedAt && entry.at <= firedAt + delayMs) break;
        entries.delete(entry);
        entry.fn();
      }
    } finally {
      // Also after a callback threw, and once for entries added while firing: one timer, for the new head.
      const head = entries.values().next();
      if (!head.done) arm(head.value.at);
    }
  };

  return {
    add: (fn) => {
      const entry: Entry = { at: now() + delayMs, fn };
      entries.add(entry);
      // Arm when nothing is armed, when the clock went back (the new entry is due first), or when the armed
      // timer is long overdue: it will never fire (armed under fake timers that are gone since).
      if (timer === undefined || entry.at < armedAt || entry.at - armedAt > 2 * delayMs) arm(entry.at);
      return () => {
        entries.delete(entry);
      };
    },
  };
};

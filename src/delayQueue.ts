import type { Clock, TimerHandle } from './clock';
import { intervalTime } from './clock';

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
 * Entries share one delay, so insertion order is due order: the timer is armed for the head. When it fires, the
 * head it was armed for runs, with everything before it, whatever the clock reads (a timer may fire a fraction
 * of a millisecond before a finer clock says so, and under fake timers that leave `performance` alone the clock
 * never says so); after it, only entries the clock says are due. An entry added while firing therefore waits
 * for its own turn. A cancelled entry just leaves the set; the timer then fires for nothing and stops, so it
 * outlives the last entry by at most `delayMs`, unref'd.
 *
 * Times come from `intervalTime(clock)`. A timer is never armed more than `delayMs` ahead, so an entry whose time
 * reads far in the future (an injected clock went back, or the entry was made under fake timers) is late by at
 * most `delayMs` once it is the head, and holds nothing up for longer. A timer that will never fire (armed
 * under fake timers that are gone) is replaced by the next `add`.
 */
const createDelayQueue = (clock: Clock, delayMs: number): DelayQueue => {
  const now = intervalTime(clock);
  const entries = new Set<Entry>();
  let timer: TimerHandle | undefined;
  let armedFor: Entry | undefined;
  let firesAt = 0;

  const head = (): Entry | undefined => entries.values().next().value;
  const arm = (entry: Entry): void => {
    if (timer !== undefined) clock.clearTimeout(timer);
    const at = now();
    const wait = Math.min(delayMs, Math.max(0, entry.at - at));
    armedFor = entry;
    firesAt = at + wait;
    timer = clock.setTimeout(fire, wait);
  };
  const fire = (): void => {
    const target = armedFor;
    timer = undefined;
    armedFor = undefined;
    const firedAt = now();
    let pastTarget = target === undefined || !entries.has(target);
    try {
      for (const entry of entries) {
        if (pastTarget && entry.at > firedAt) break;
        if (entry === target) pastTarget = true;
        entries.delete(entry);
        entry.fn();
      }
    } finally {
      // Also after a callback threw, and once for entries added while firing: one timer, for the new head.
      const next = head();
      if (next !== undefined) arm(next);
    }
  };

  return {
    add: (fn) => {
      const at = now();
      const entry: Entry = { at: at + delayMs, fn };
      entries.add(entry);
      // Overdue by more than a delay, or due further ahead than any timer is armed: that timer will not fire.
      if (timer === undefined || Math.abs(at - firesAt) > delayMs) arm(head() as Entry);
      return () => {
        entries.delete(entry);
      };
    },
  };
};

/** Time as the library sees it. Inject one in tests so leases and timeouts need no sleeps. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` after `ms`; the timer must not keep the process alive. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export type TimerHandle = unknown;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const timer = setTimeout(fn, ms);
    timer.unref?.();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * A reading of `clock` for measuring intervals: `performance.now()` for the system clock, which never jumps (a
 * wall clock stepped back by NTP would stretch every lease and deadline by as much), the clock's own `now()` for
 * an injected one. Readings of different clocks don't compare.
 */
export const intervalTime = (clock: Clock): (() => number) => (clock === systemClock ? performanceNow : () => clock.now());

const performanceNow = (): number => performance.now();

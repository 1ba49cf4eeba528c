import { describe, expect, it, vi } from 'vitest';
import type { Clock } from '../src/clock';
import { systemClock } from '../src/clock';
import { delayQueue } from '../src/delayQueue';
import { createManualClock } from './helpers/manualClock';

describe('delayQueue', () => {
  it('runs each callback its delay after it was added, all on one timer', async () => {
    const clock = createManualClock();
    const queue = delayQueue(clock, 100);
    const ran: string[] = [];
    queue.add(() => ran.push(`a@${clock.now()}`));
    await clock.advance(30);
    queue.add(() => ran.push(`b@${clock.now()}`));
    queue.add(() => ran.push(`c@${clock.now()}`));
    expect(clock.pending()).toBe(1);
    await clock.advance(69);
    expect(ran).toEqual([]);
    await clock.advance(1);
    expect(ran).toEqual([`a@${clock.now()}`]);
    await clock.advance(30);
    expect(ran).toHaveLength(3);
    expect(ran[1]).toBe(`b@${clock.now()}`);
    expect(clock.pending()).toBe(0);
  });

  it('skips cancelled callbacks and stops its timer when nothing is left', async () => {
    const clock = createManualClock();
    const queue = delayQueue(clock, 100);
    let runs = 0;
    const cancel = queue.add(() => runs++);
    cancel();
    await clock.advance(100);
    expect(runs).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  it('is shared per clock and delay', () => {
    const clock = createManualClock();
    expect(delayQueue(clock, 100)).toBe(delayQueue(clock, 100));
    expect(delayQueue(clock, 100)).not.toBe(delayQueue(clock, 200));
    expect(delayQueue(clock, 100)).not.toBe(delayQueue(createManualClock(), 100));
  });

  /** A clock whose time the test sets, and whose timers it fires by hand. */
  const handClock = () => {
    let now = 1_000;
    const timers: Array<{ at: number; fn: () => void }> = [];
    const clock: Clock = {
      now: () => now,
      setTimeout: (fn, ms) => {
        const timer = { at: now + ms, fn };
        timers.push(timer);
        return timer;
      },
      clearTimeout: (handle) => {
        const index = timers.indexOf(handle as (typeof timers)[number]);
        if (index !== -1) timers.splice(index, 1);
      },
    };
    const fireNext = (): void => {
      const timer = timers.shift();
      if (!timer) throw new Error('no timer armed');
      now = Math.max(now, timer.at);
      timer.fn();
    };
    return { clock, timers, fireNext, set: (ms: number) => (now = ms) };
  };

  it('runs an entry added after an injected clock went back no more than one delay late, and holds nothing up', () => {
    const { clock, timers, fireNext, set } = handClock();
    const queue = delayQueue(clock, 100);
    const ran: string[] = [];
    queue.add(() => ran.push('before'));
    expect(timers.map((t) => t.at)).toEqual([1_100]);
    set(500);
    queue.add(() => ran.push('after'));
    // The armed time now reads 600 ms ahead, more than any timer is armed: re-armed, at most a delay ahead.
    expect(timers.map((t) => t.at)).toEqual([600]);
    fireNext(); // 'before' is the entry the timer was armed for: it runs, and 'after' is due by now
    expect(ran).toEqual(['before', 'after']);
    expect(timers).toHaveLength(0);
  });

  it('keeps one timer when a callback adds an entry while the queue fires', () => {
    const { clock, timers, fireNext } = handClock();
    const queue = delayQueue(clock, 100);
    let runs = 0;
    const again = (): void => {
      runs++;
      queue.add(again);
    };
    queue.add(again);
    for (let i = 0; i < 5; i++) {
      fireNext();
      expect(timers).toHaveLength(1);
    }
    expect(runs).toBe(5);
  });

  it('runs an entry added while firing on its own turn, even when the clock moves during the callbacks', () => {
    const { clock, timers, fireNext, set } = handClock();
    const queue = delayQueue(clock, 100);
    let runs = 0;
    const again = (): void => {
      runs++;
      set(clock.now() + 10); // the callback takes 10 ms
      if (runs < 50) queue.add(again); // bounded, so a regression fails here instead of spinning forever
    };
    queue.add(again);
    fireNext();
    expect(runs).toBe(1);
    expect(timers.map((t) => t.at)).toEqual([1_210]);
  });

  it('still runs the other due entries later when a callback throws', () => {
    const { clock, timers, fireNext } = handClock();
    const queue = delayQueue(clock, 100);
    let ran = false;
    queue.add(() => {
      throw new Error('boom');
    });
    queue.add(() => (ran = true));
    expect(() => fireNext()).toThrow('boom');
    expect(timers).toHaveLength(1); // re-armed for what is left
    fireNext();
    expect(ran).toBe(true);
  });

  it('runs overdue entries at once when its timer is long overdue (a stall, or fake timers that are gone)', () => {
    const { clock, timers, fireNext, set } = handClock();
    const queue = delayQueue(clock, 100);
    const ran: string[] = [];
    queue.add(() => ran.push('overdue'));
    timers.length = 0; // the timer vanished without firing
    set(5_000);
    queue.add(() => ran.push('new'));
    expect(timers.map((t) => t.at)).toEqual([5_000]); // now, for the overdue head
    fireNext();
    expect(ran).toEqual(['overdue']);
    expect(timers.map((t) => t.at)).toEqual([5_100]);
    fireNext();
    expect(ran).toEqual(['overdue', 'new']);
  });

  it('times the system clock on performance.now: stepping the wall clock back does not hold an entry', async () => {
    const startedAt = performance.now();
    const fired = new Promise<number>((resolve) => delayQueue(systemClock, 25).add(() => resolve(performance.now() - startedAt)));
    const wall = Date.now();
    vi.spyOn(Date, 'now').mockImplementation(() => wall - 60_000);
    try {
      expect(await fired).toBeGreaterThanOrEqual(24);
    } finally {
      vi.restoreAllMocks();
    }
  }, 2_000);

  it.each([
    ['timers and Date only', { toFake: ['setTimeout', 'clearTimeout', 'Date'] as const }],
    ['the default set (performance included)', {}],
  ])('works on the system clock under fake timers: %s', (_name, config) => {
    vi.useFakeTimers(config as Parameters<typeof vi.useFakeTimers>[0]);
    try {
      let runs = 0;
      delayQueue(systemClock, 200).add(() => runs++);
      vi.advanceTimersByTime(190);
      expect(runs).toBe(0);
      vi.advanceTimersByTime(5_000);
      expect(runs).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

import { describe, expect, it } from 'vitest';
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

  it('runs an entry added after the clock went back no more than one delay late, and holds nothing up', () => {
    const { clock, timers, fireNext, set } = handClock();
    const queue = delayQueue(clock, 100);
    const ran: string[] = [];
    queue.add(() => ran.push('before'));
    expect(timers.map((t) => t.at)).toEqual([1_100]);
    set(500);
    queue.add(() => ran.push('after'));
    expect(timers.map((t) => t.at)).toEqual([600]); // re-armed for the new entry
    fireNext(); // at 600 'before' looks due 500 ms ahead, more than a delay: it runs now instead of holding 'after'
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

  it('re-arms when its timer is long overdue (it was armed under fake timers that are gone)', () => {
    const { clock, timers, set } = handClock();
    const queue = delayQueue(clock, 100);
    queue.add(() => undefined);
    timers.length = 0; // the timer vanished without firing
    set(5_000);
    let ran = false;
    queue.add(() => (ran = true));
    expect(timers.map((t) => t.at)).toEqual([5_100]);
    const timer = timers.shift();
    set(5_100);
    timer?.fn();
    expect(ran).toBe(true);
  });

  it('times the system clock on performance.now, with real timers', async () => {
    const startedAt = performance.now();
    const elapsed = await new Promise<number>((resolve) => delayQueue(systemClock, 25).add(() => resolve(performance.now() - startedAt)));
    expect(elapsed).toBeGreaterThanOrEqual(24);
  });
});

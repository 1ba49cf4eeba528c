import { describe, expect, it } from 'vitest';
import type { Clock } from '../src/clock';
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

  it('re-arms for an entry added after the clock went back, rather than firing it late', async () => {
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
        timers.splice(timers.indexOf(handle as (typeof timers)[number]), 1);
      },
    };
    const queue = delayQueue(clock, 100);
    queue.add(() => undefined);
    expect(timers.map((t) => t.at)).toEqual([1_100]);
    now = 500;
    let ran = false;
    queue.add(() => (ran = true));
    expect(timers.map((t) => t.at)).toEqual([600]);
    now = 1_100;
    timers[0]?.fn();
    expect(ran).toBe(true);
  });
});

import { describe, expect, it } from 'vitest';
import { createIndexedHeap } from '../../src/stores/indexedHeap';

interface Item {
  readonly name: string;
  key: number;
  index: number;
}

const heapOf = () =>
  createIndexedHeap<Item>((a, b) => a.key < b.key, {
    get: (item) => item.index,
    set: (item, i) => (item.index = i),
  });

const item = (name: string, key: number): Item => ({ name, key, index: -1 });

/** Takes everything out, smallest key first, as the store does when it evicts or sweeps. */
const drain = (heap: ReturnType<typeof heapOf>): number[] => {
  const out: number[] = [];
  for (let top = heap.peek(); top; top = heap.peek()) {
    out.push(top.key);
    heap.remove(top);
  }
  return out;
};

/** A small deterministic generator: the same sequence every run, so a failure reproduces. */
const random = (seed: number) => () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};

describe('createIndexedHeap', () => {
  it('is empty at first: size 0 and nothing to peek', () => {
    const heap = heapOf();
    expect(heap.size).toBe(0);
    expect(heap.peek()).toBeUndefined();
  });

  it('gives items back smallest first, whatever order they were pushed in', () => {
    const heap = heapOf();
    const keys = [50, 3, 99, 3, 17, 0, 42, 8, 77, 1, 64, 23, 5];
    for (const [i, key] of keys.entries()) heap.push(item(`i${i}`, key));
    expect(heap.size).toBe(keys.length);
    expect(drain(heap)).toEqual([...keys].sort((a, b) => a - b));
    expect(heap.size).toBe(0);
  });

  it('removes any item, not just the top, and keeps the order of the rest', () => {
    const heap = heapOf();
    const items = Array.from({ length: 30 }, (_, i) => item(`i${i}`, (i * 37) % 101));
    for (const it of items) heap.push(it);
    const removed = items.filter((_, i) => i % 3 === 1);
    for (const it of removed) heap.remove(it);
    expect(removed.every((it) => it.index === -1)).toBe(true);
    expect(heap.size).toBe(items.length - removed.length);
    expect(drain(heap)).toEqual(
      items
        .filter((it) => !removed.includes(it))
        .map((it) => it.key)
        .sort((a, b) => a - b),
    );
  });

  it('moves an item up or down when its key changes and update is called', () => {
    const heap = heapOf();
    const items = Array.from({ length: 20 }, (_, i) => item(`i${i}`, i * 10));
    for (const it of items) heap.push(it);
    (items[15] as Item).key = -1; // now the smallest: must come up to the top
    heap.update(items[15] as Item);
    expect(heap.peek()).toBe(items[15]);
    (items[15] as Item).key = 1_000; // now the largest: must sink
    heap.update(items[15] as Item);
    (items[0] as Item).key = 55; // the old top moves into the middle
    heap.update(items[0] as Item);
    expect(drain(heap)).toEqual(items.map((it) => it.key).sort((a, b) => a - b));
  });

  it('ignores remove and update of an item that is not in the heap, even one holding a stale position', () => {
    const heap = heapOf();
    const a = item('a', 1);
    const b = item('b', 2);
    heap.push(a);
    heap.push(b);
    const stranger = item('stranger', 0);
    heap.remove(stranger);
    heap.update(stranger);
    // An item that claims a position another item holds (say, left over from another heap).
    const stale = item('stale', -5);
    stale.index = 0;
    heap.remove(stale);
    heap.update(stale);
    // And one whose position is past the end of this heap.
    const gone = item('gone', -5);
    gone.index = 7;
    heap.remove(gone);
    heap.update(gone);
    expect(heap.size).toBe(2);
    expect(heap.peek()).toBe(a);
    expect(a.index).toBe(0);
    heap.remove(a);
    heap.remove(a); // twice: the second is a no-op
    expect(heap.size).toBe(1);
    expect(heap.peek()).toBe(b);
  });

  it('agrees with a sorted list over two thousand random pushes, removes and key changes', () => {
    const next = random(7);
    const heap = heapOf();
    const inHeap: Item[] = [];
    for (let step = 0; step < 2_000; step++) {
      const roll = next();
      if (roll < 0.45 || inHeap.length === 0) {
        const it = item(`i${step}`, Math.floor(next() * 1_000));
        heap.push(it);
        inHeap.push(it);
      } else if (roll < 0.7) {
        const it = inHeap.splice(Math.floor(next() * inHeap.length), 1)[0] as Item;
        heap.remove(it);
      } else if (roll < 0.85) {
        const it = inHeap[Math.floor(next() * inHeap.length)] as Item;
        it.key = Math.floor(next() * 1_000);
        heap.update(it);
      } else {
        const top = heap.peek() as Item;
        expect(top.key).toBe(Math.min(...inHeap.map((it) => it.key)));
        heap.remove(top);
        inHeap.splice(inHeap.indexOf(top), 1);
      }
      expect(heap.size).toBe(inHeap.length);
    }
    expect(drain(heap)).toEqual(inHeap.map((it) => it.key).sort((a, b) => a - b));
  });
});

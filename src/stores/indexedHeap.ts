/**
 * A binary heap whose items know their own position, so any item can be removed or re-sorted in O(log n)
 * without a search, and nothing stale stays behind: a removed item is referenced by nothing in the heap
 * (unlike a heap with lazy deletion, which would keep replaced records and their results alive).
 */
export interface IndexedHeap<T> {
  readonly size: number;
  /** The first item in heap order, or `undefined`. */
  peek(): T | undefined;
  push(item: T): void;
  /** Removes `item`; a no-op for an item not in this heap. */
  remove(item: T): void;
  /** Restores heap order after `item`'s key changed. */
  update(item: T): void;
}

/** Where an item keeps its position in one heap (`-1` when not in it). */
export interface HeapSlot<T> {
  get(item: T): number;
  set(item: T, index: number): void;
}

/** `before(a, b)`: `a` comes out first. */
export const createIndexedHeap = <T>(before: (a: T, b: T) => boolean, slot: HeapSlot<T>): IndexedHeap<T> => {
  const items: T[] = [];
  const at = (i: number): T => items[i] as T;
  const place = (item: T, i: number): void => {
    items[i] = item;
    slot.set(item, i);
  };
  const up = (i: number): number => {
    const item = at(i);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, at(parent))) break;
      place(at(parent), i);
      i = parent;
    }
    place(item, i);
    return i;
  };
  const down = (i: number): void => {
    const item = at(i);
    const n = items.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && before(at(right), at(left)) ? right : left;
      if (!before(at(child), item)) break;
      place(at(child), i);
      i = child;
    }
    place(item, i);
  };
  const update = (item: T): void => {
    const i = slot.get(item);
    if (i < 0 || items[i] !== item) return;
    if (up(i) === i) down(i);
  };
  return {
    get size() {
      return items.length;
    },
    peek: () => items[0],
    push: (item) => {
      items.push(item);
      up(items.length - 1);
    },
    remove: (item) => {
      const i = slot.get(item);
      if (i < 0 || items[i] !== item) return;
      slot.set(item, -1);
      const last = items.pop() as T;
      if (last === item) return;
      place(last, i);
      update(last);
    },
    update,
  };
};

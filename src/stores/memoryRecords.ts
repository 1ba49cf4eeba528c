import type { IndexedHeap } from './indexedHeap';
import { createIndexedHeap } from './indexedHeap';

/**
 * What one record is counted for beyond its strings: the record object (about 15 fields), its Map slot and its
 * heap and list slots. An estimate on the generous side, not a measurement: the budget is a bound, not a
 * heap profile.
 */
export const RECORD_OVERHEAD_BYTES = 512;

/** What one recorded step is counted for beyond its two strings: its Map entry. */
export const STEP_OVERHEAD_BYTES = 64;

/** Bytes a record is counted for: 2 per UTF-16 unit of its strings (the most V8 holds) plus the overheads. */
export const recordBytes = (
  { id, token, fingerprint, stepBytes }: Pick<Rec, 'id' | 'token' | 'fingerprint' | 'stepBytes'>,
  result: string,
): number => RECORD_OVERHEAD_BYTES + stepBytes + 2 * (id.length + token.length + fingerprint.length + result.length);

/** Bytes one recorded step adds to its record. */
export const stepBytesOf = (name: string, text: string): number => STEP_OVERHEAD_BYTES + 2 * (name.length + text.length);

/**
 * One record of the memory store. It sits in exactly one of its partition's `running`, `released`, `completed`
 * (a finished record with steps sits in `completed`: losing it would rerun its steps, see listOf).
 */
export interface Rec {
  readonly id: string;
  part: Partition;
  state: 'in_progress' | 'completed' | 'released';
  token: string;
  fingerprint: string;
  fence: number;
  /** In progress: when the lease ends. */
  leaseUntil: number;
  /** When the record is forgotten (for an in-progress record: the lease plus a grace period). */
  expiresAt: number;
  /** Completed: the stored text; `''` otherwise. */
  result: string;
  /** Recorded steps (in progress or released); `undefined` when none, and always once completed. */
  steps: Map<string, string> | undefined;
  /** What the steps count for (see stepBytesOf); 0 without steps. */
  stepBytes: number;
  /** With steps: the record is kept at least until then (see StepRequest.keepMs); 0 without. */
  keepUntil: number;
  /** What the record counts for (see recordBytes). */
  bytes: number;
  /** Position in the store's expiry heap. */
  expiryIndex: number;
  /** Position in the partition's running heap; `-1` when finished. */
  runningIndex: number;
  /** Position in the store's heap of running records; `-1` when finished. */
  leaseIndex: number;
  /** Neighbours in the partition's `released` or `completed` list. */
  prev: Rec | undefined;
  next: Rec | undefined;
}

/** A doubly linked list threaded through the records themselves: O(1) append and unlink, no extra objects. */
export interface RecordList {
  head: Rec | undefined;
  tail: Rec | undefined;
}

/** The records of one partition (scope), with the counters the bounds are checked against. */
export interface Partition {
  readonly id: string;
  entries: number;
  bytes: number;
  /** In-progress records, the lease that ends first on top. */
  running: IndexedHeap<Rec>;
  /** Released records (no result: losing one costs nothing), oldest first. */
  released: RecordList;
  /** Completed records, oldest first. */
  completed: RecordList;
  /** Position in the store's heap of partitions by share. */
  heapIndex: number;
}

export const newPartition = (id: string): Partition => ({
  id,
  entries: 0,
  bytes: 0,
  running: createIndexedHeap<Rec>((a, b) => a.leaseUntil < b.leaseUntil, {
    get: (r) => r.runningIndex,
    set: (r, i) => (r.runningIndex = i),
  }),
  released: { head: undefined, tail: undefined },
  completed: { head: undefined, tail: undefined },
  heapIndex: -1,
});

/** The list a finished record sits in: released records without steps cost nothing to lose, the others do. */
export const listOf = (r: Rec): RecordList => (r.state === 'released' && !r.steps ? r.part.released : r.part.completed);

export const append = (list: RecordList, r: Rec): void => {
  r.prev = list.tail;
  r.next = undefined;
  if (list.tail) list.tail.next = r;
  else list.head = r;
  list.tail = r;
};

export const unlink = (list: RecordList, r: Rec): void => {
  if (r.prev) r.prev.next = r.next;
  else if (list.head === r) list.head = r.next;
  if (r.next) r.next.prev = r.prev;
  else if (list.tail === r) list.tail = r.prev;
  r.prev = undefined;
  r.next = undefined;
};

import { describe, expect, it } from 'vitest';
import type { Rec, RecordList } from '../../src/stores/memoryRecords';
import {
  RECORD_OVERHEAD_BYTES,
  STEP_OVERHEAD_BYTES,
  append,
  listOf,
  newPartition,
  recordBytes,
  stepBytesOf,
  unlink,
} from '../../src/stores/memoryRecords';

const rec = (id: string): Rec => ({
  id,
  part: newPartition('p'),
  state: 'completed',
  token: 't',
  fingerprint: '',
  fence: 1,
  leaseUntil: 0,
  expiresAt: 0,
  result: '',
  steps: undefined,
  stepBytes: 0,
  keepUntil: 0,
  bytes: 0,
  expiryIndex: -1,
  runningIndex: -1,
  leaseIndex: -1,
  prev: undefined,
  next: undefined,
});

/** The ids from head to tail, and checks the links agree both ways. */
const idsOf = (list: RecordList): string[] => {
  const ids: string[] = [];
  let previous: Rec | undefined;
  for (let r = list.head; r; r = r.next) {
    expect(r.prev).toBe(previous);
    ids.push(r.id);
    previous = r;
  }
  expect(list.tail).toBe(previous);
  return ids;
};

describe('memory store record lists', () => {
  it('keeps records in the order they were appended, oldest at the head', () => {
    const list: RecordList = { head: undefined, tail: undefined };
    for (const id of ['a', 'b', 'c']) append(list, rec(id));
    expect(idsOf(list)).toEqual(['a', 'b', 'c']);
  });

  it('unlinks the head, a middle record and the tail, leaving the others in order and the unlinked record detached', () => {
    for (const gone of ['a', 'c', 'e']) {
      const list: RecordList = { head: undefined, tail: undefined };
      const records = ['a', 'b', 'c', 'd', 'e'].map(rec);
      for (const r of records) append(list, r);
      const r = records.find((x) => x.id === gone) as Rec;
      unlink(list, r);
      expect(r.prev).toBeUndefined();
      expect(r.next).toBeUndefined();
      expect(idsOf(list)).toEqual(['a', 'b', 'c', 'd', 'e'].filter((id) => id !== gone));
    }
  });

  it('empties a list whose only record is unlinked, and appends to it again', () => {
    const list: RecordList = { head: undefined, tail: undefined };
    const only = rec('only');
    append(list, only);
    unlink(list, only);
    expect(list).toEqual({ head: undefined, tail: undefined });
    append(list, rec('again'));
    expect(idsOf(list)).toEqual(['again']);
  });

  it('leaves a list alone when asked to unlink a detached record that is not in it', () => {
    const list: RecordList = { head: undefined, tail: undefined };
    for (const id of ['a', 'b']) append(list, rec(id));
    unlink(list, rec('stranger'));
    expect(idsOf(list)).toEqual(['a', 'b']);
  });

  it('files a released record without steps as released (free to lose), and one with steps or a result as completed', () => {
    const released = { ...rec('r'), state: 'released' as const };
    expect(listOf(released)).toBe(released.part.released);
    const withSteps = { ...rec('s'), state: 'released' as const, steps: new Map([['charge', '1o1']]) };
    expect(listOf(withSteps)).toBe(withSteps.part.completed);
    const completed = rec('c');
    expect(listOf(completed)).toBe(completed.part.completed);
  });

  it('counts 2 bytes per UTF-16 unit of every string of a record, plus its steps and a fixed overhead', () => {
    expect(recordBytes({ id: 'ab', token: 'cde', fingerprint: 'f', stepBytes: 100 }, 'result')).toBe(
      RECORD_OVERHEAD_BYTES + 100 + 2 * (2 + 3 + 1 + 6),
    );
    expect(stepBytesOf('charge', 'xyz')).toBe(STEP_OVERHEAD_BYTES + 2 * (6 + 3));
  });

  it('makes an empty partition: no records, no bytes, in no heap', () => {
    const p = newPartition('scope');
    expect(p).toMatchObject({ id: 'scope', entries: 0, bytes: 0, heapIndex: -1 });
    expect(p.running.size).toBe(0);
    expect(p.released).toEqual({ head: undefined, tail: undefined });
    expect(p.completed).toEqual({ head: undefined, tail: undefined });
  });

  it("orders a partition's running records by the end of their lease, soonest first", () => {
    const p = newPartition('p');
    const records = [30, 10, 20].map((leaseUntil, i) => ({ ...rec(`r${i}`), state: 'in_progress' as const, leaseUntil }));
    for (const r of records) p.running.push(r);
    expect(p.running.peek()?.leaseUntil).toBe(10);
    p.running.remove(p.running.peek() as Rec);
    expect(p.running.peek()?.leaseUntil).toBe(20);
  });
});

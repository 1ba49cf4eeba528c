import { describe, expect, it } from 'vitest';
import { parseMonitorLine } from './redisMonitor';

describe('parseMonitorLine (test helper)', () => {
  it('reads the command, its arguments with Redis escapes, and the source', () => {
    expect(parseMonitorLine('1795878029.258308 [0 127.0.0.1:45416] "EVALSHA" "ab\\"c" "a\\\\b" "x\\x00y\\n" ""')).toEqual({
      name: 'evalsha',
      args: ['ab"c', 'a\\b', 'x\u0000y\n', ''],
      source: '127.0.0.1:45416',
    });
    expect(parseMonitorLine('1795878029.258308 [0 lua] "hget" "k" "f"')?.source).toBe('lua');
    expect(parseMonitorLine('not a monitor line')).toBeUndefined();
  });

  it('decodes a UTF-8 argument from the bytes MONITOR escapes one by one', () => {
    // What Redis prints for `SET k "é€😀"`: every byte outside printable ASCII as \xHH.
    const line = '1795878029.258308 [0 127.0.0.1:45416] "set" "k" "\\xc3\\xa9\\xe2\\x82\\xac\\xf0\\x9f\\x98\\x80"';
    expect(parseMonitorLine(line)?.args).toEqual(['k', 'é€😀']);
  });
});

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
});

import { describe, expect, it } from 'vitest';
import { keyHeaderNames } from '../../src/server/key';
import { resolveGlobalOptions } from '../../src/server/options';
import { resolveKey } from '../../src/server/resolveKey';

describe('resolveKey', () => {
  const names = keyHeaderNames('idempotency-key');
  const request = { carrier: {}, bag: { 'idempotency-key': 'from-header' }, kind: 'lower' as const };
  const call = (rawInput: unknown) => ({ ctx: {}, path: 'p', batchIndex: 0, getRawInput: async () => rawInput });

  it('reads no input field when inputKey is false, even one named "false"', async () => {
    const options = resolveGlobalOptions({});
    expect(await resolveKey(call({ false: 'from-input' }), options, { request, names })).toBe('from-header');
    expect(await resolveKey(call({ false: 'from-input' }), options, { request: undefined, names })).toBeUndefined();
  });

  it('reads the input field inputKey names before the header', async () => {
    const options = resolveGlobalOptions({ inputKey: 'k' });
    expect(await resolveKey(call({ k: 'from-input' }), options, { request, names })).toBe('from-input');
  });
});

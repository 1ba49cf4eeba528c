import { describe, expect, it } from 'vitest';
import { idempotencyHeaders } from '../../src/client/index';
import { MAX_KEYS_HEADER_LENGTH } from '../../src/wire';
import { makeOp } from './fixtures';

/** `count` keyed mutations with UUID-long (36-character) keys. */
const uuidBatch = (count: number) =>
  Array.from({ length: count }, (_, i) => makeOp({ context: { idempotencyKey: String(i).padStart(36, '0') } }));

describe('idempotencyHeaders', () => {
  it('sets Idempotency-Key for a single keyed mutation ({ op }, httpLink)', () => {
    expect(idempotencyHeaders({ op: makeOp() })).toEqual({ 'idempotency-key': 'k1' });
  });

  it('sets Idempotency-Keys as a JSON array by batch position, null where a call has no key ({ opList })', () => {
    const opList = [makeOp({ context: { idempotencyKey: 'a' } }), makeOp({ context: {} }), makeOp({ context: { idempotencyKey: 'c' } })];
    expect(idempotencyHeaders({ opList })).toEqual({ 'idempotency-keys': '["a",null,"c"]' });
  });

  it('sends nothing for queries or for calls without keys', () => {
    expect(idempotencyHeaders({ op: makeOp({ type: 'query' }) })).toEqual({});
    expect(idempotencyHeaders({ op: makeOp({ context: {} }) })).toEqual({});
    expect(idempotencyHeaders({ opList: [makeOp({ type: 'query' }), makeOp({ type: 'query' })] })).toEqual({});
  });

  it('composes with your own headers by spreading', () => {
    const headers = (opts: Parameters<typeof idempotencyHeaders>[0]) => ({ authorization: 'Bearer t', ...idempotencyHeaders(opts) });
    expect(headers({ op: makeOp() })).toEqual({ authorization: 'Bearer t', 'idempotency-key': 'k1' });
  });

  it(`sends 100 UUID keys within the ${MAX_KEYS_HEADER_LENGTH}-byte budget (the maxItems the docs recommend)`, () => {
    const value = idempotencyHeaders({ opList: uuidBatch(100) })['idempotency-keys'] ?? '';
    expect(value.length).toBe(3901);
    expect(value.length).toBeLessThanOrEqual(MAX_KEYS_HEADER_LENGTH);
  });

  it('refuses a batch whose Idempotency-Keys would pass the budget, naming the size and the maxItems fix', () => {
    expect(() => idempotencyHeaders({ opList: uuidBatch(106) })).toThrow(/batch of 106 calls needs a 4135-byte Idempotency-Keys .*maxItems/);
    expect(idempotencyHeaders({ opList: uuidBatch(105) })['idempotency-keys']?.length).toBe(4096);
  });
});

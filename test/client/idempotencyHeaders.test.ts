import { describe, expect, it } from 'vitest';
import { idempotencyHeaders } from '../../src/client/index';
import { makeOp } from './fixtures';

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
});

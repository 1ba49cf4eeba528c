import { describe, expect, it } from 'vitest';
import { readKeyStatus, readRetryAfterMs } from '../../src/client/responseStatus';

const meta = (headers: Record<string, string>) => ({ response: new Response(null, { headers }) });

describe('readKeyStatus', () => {
  it('reads this key from the Idempotency-Status JSON object', () => {
    const m = meta({ 'idempotency-status': '{"a":"replayed","b":"executed"}' });
    expect(readKeyStatus(m, 'a')).toEqual({ kind: 'reported', status: 'replayed' });
    expect(readKeyStatus(m, 'b')).toEqual({ kind: 'reported', status: 'executed' });
    expect(readKeyStatus(m, 'c')).toEqual({ kind: 'not_seen' });
  });

  it('tells deferred, absent, unparsable and no response apart', () => {
    expect(readKeyStatus(meta({ 'idempotency-status': 'deferred' }), 'a')).toEqual({ kind: 'deferred' });
    expect(readKeyStatus(meta({}), 'a')).toEqual({ kind: 'absent' });
    expect(readKeyStatus(meta({ 'idempotency-status': '{oops' }), 'a')).toEqual({ kind: 'absent' });
    expect(readKeyStatus(undefined, 'a')).toEqual({ kind: 'no_response' });
  });

  it('reads a batch call from its letter in Idempotency-Statuses, by position', () => {
    const m = meta({ 'idempotency-statuses': 'erlpmnu-' });
    const statuses = ['executed', 'replayed', 'released', 'in_progress', 'mismatch', 'not_stored', 'store_unavailable'];
    statuses.forEach((status, position) => expect(readKeyStatus(m, 'any', position)).toEqual({ kind: 'reported', status }));
    expect(readKeyStatus(m, 'any', 7)).toEqual({ kind: 'not_seen' });
    expect(readKeyStatus(m, 'any', 8)).toEqual({ kind: 'not_seen' });
  });

  it('tells omitted statuses apart, and ignores a letter it does not know', () => {
    expect(readKeyStatus(meta({ 'idempotency-statuses': 'omitted' }), 'a', 3)).toEqual({ kind: 'omitted' });
    expect(readKeyStatus(meta({ 'idempotency-status': 'omitted' }), 'a')).toEqual({ kind: 'omitted' });
    expect(readKeyStatus(meta({ 'idempotency-statuses': 'z' }), 'a', 0)).toEqual({ kind: 'absent' });
  });

  it('reads a status it does not know as absent, never as a status outside KeyStatus', () => {
    const m = meta({ 'idempotency-status': '{"a":"REPLAYED","b":"toString","c":"replayed, executed","__proto__":"replayed"}' });
    expect(readKeyStatus(m, 'a')).toEqual({ kind: 'absent' });
    expect(readKeyStatus(m, 'b')).toEqual({ kind: 'absent' });
    expect(readKeyStatus(m, 'c')).toEqual({ kind: 'absent' });
    // JSON.parse makes __proto__ an own key: it is read like any other, and a missing one is not Object.prototype.
    expect(readKeyStatus(m, '__proto__')).toEqual({ kind: 'reported', status: 'replayed' });
    expect(readKeyStatus(meta({ 'idempotency-status': '{}' }), '__proto__')).toEqual({ kind: 'not_seen' });
    expect(readKeyStatus(meta({ 'idempotency-status': '{}' }), 'constructor')).toEqual({ kind: 'not_seen' });
  });

  it('reads a streamed batch as deferred (no Idempotency-Statuses, Idempotency-Status: deferred)', () => {
    expect(readKeyStatus(meta({ 'idempotency-status': 'deferred' }), 'a', 2)).toEqual({ kind: 'deferred' });
  });

  it("falls back to Stripe's Idempotent-Replayed: true", () => {
    expect(readKeyStatus(meta({ 'idempotent-replayed': 'true' }), 'a')).toEqual({ kind: 'reported', status: 'replayed' });
  });
});

describe('readRetryAfterMs', () => {
  it('reads delta-seconds and HTTP dates', () => {
    expect(readRetryAfterMs(meta({ 'retry-after': '2' }))).toBe(2_000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(readRetryAfterMs(meta({ 'retry-after': 'Thu, 01 Jan 2026 00:00:03 GMT' }), now)).toBe(3_000);
    expect(readRetryAfterMs(meta({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(readRetryAfterMs(meta({}))).toBeUndefined();
  });
});

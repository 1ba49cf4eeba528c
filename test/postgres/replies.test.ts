import { describe, expect, it } from 'vitest';
import { isIdempotencyError } from '../../src/errors';
import { NO_STEPS } from '../../src/store';
import { parseClaimReply, parseLeaseReply, parsePeekReply, parseStepReply } from '../../src/stores/postgres/replies';

// The replies of the store's SQL functions (sql/*.sql headers) as outcomes. A reply none of them gives (a function
// of another version, or edited by hand) must never pass for an outcome: acquiring with a made-up fence, replaying,
// or reporting a lease would each break the store's guarantees.
const where = 'row "k" of table t';

/** The message of what `parse` throws; fails the test when it returns. */
const thrown = (parse: () => unknown): Error => {
  let outcome: unknown;
  try {
    outcome = parse();
  } catch (error) {
    return error as Error;
  }
  throw new Error(`expected an error, got ${JSON.stringify(outcome)}`);
};

/** Expects a broken invariant (a plain Error naming the function and the row), not an outcome or RECORD_CORRUPT. */
const expectUnexpected = (parse: () => unknown, fn: string): Error => {
  const error = thrown(parse);
  expect(isIdempotencyError(error), error.message).toBe(false);
  expect(error.message).toContain(`unexpected reply from the ${fn} function for ${where}`);
  return error;
};

describe('postgres store replies', () => {
  it('reads every claim reply the claim function gives', () => {
    expect(parseClaimReply('A042', where)).toEqual({ status: 'acquired', fence: 42, takeover: false, steps: NO_STEPS });
    expect(parseClaimReply('A17', where)).toEqual({ status: 'acquired', fence: 7, takeover: true, steps: NO_STEPS });
    expect(parseClaimReply('A09\n{"charge":"ch_1","mail":""}', where)).toEqual({
      status: 'acquired',
      fence: 9,
      takeover: false,
      steps: new Map([
        ['charge', 'ch_1'],
        ['mail', ''],
      ]),
    });
    expect(parseClaimReply('I250', where)).toEqual({ status: 'in_progress', retryAfterMs: 250 });
    expect(parseClaimReply('C{"paid":5}', where)).toEqual({ status: 'completed', result: '{"paid":5}' });
    expect(parseClaimReply('C', where)).toEqual({ status: 'completed', result: '' });
    expect(parseClaimReply('M', where)).toEqual({ status: 'mismatch' });
  });

  it.each([
    ['an acquire without a fence', 'A0'],
    ['an acquire with a fence that is not an integer', 'A01.5'],
    ['an acquire with a fence past 2^53', 'A09007199254740993'],
    ['an acquire whose steps are not JSON', 'A01\n{"a"'],
    ['an acquire whose steps are an array', 'A01\n["a"]'],
    ['an acquire whose steps are null', 'A01\nnull'],
    ['an acquire whose steps are a string', 'A01\n"ab"'],
    ['an acquire with a step that is not text', 'A01\n{"a":1}'],
    ['an in-progress without the time left', 'I'],
    ['an in-progress with a time left that is not a number', 'I12ms'],
    ['a mismatch with trailing text', 'Mx'],
    ['an unknown letter', 'Z1'],
    ['an empty reply', ''],
  ])('never takes %s for a claim outcome', (_name, reply) => {
    expectUnexpected(() => parseClaimReply(reply, where), 'claim');
  });

  it('rounds a lease nearly over up to 1 ms left, never 0 (a retry hint of 0 means "now")', () => {
    expect(parseClaimReply('I0', where)).toEqual({ status: 'in_progress', retryAfterMs: 1 });
    expect(parsePeekReply('I0', where)).toEqual({ status: 'in_progress', leaseLeftMs: 1 });
  });

  it('reads the renew, complete, release, step and peek replies, and nothing else', () => {
    expect(parseLeaseReply('O', where)).toEqual({ status: 'ok' });
    expect(parseLeaseReply('L', where)).toEqual({ status: 'lost' });
    for (const reply of ['', 'OK', 'E1', 'S']) expectUnexpected(() => parseLeaseReply(reply, where), 'lease');

    expect(parseStepReply('O', where)).toEqual({ status: 'ok' });
    expect(parseStepReply('L', where)).toEqual({ status: 'lost' });
    expect(parseStepReply('Ech_1', where)).toEqual({ status: 'exists', text: 'ch_1' });
    expect(parseStepReply('E', where)).toEqual({ status: 'exists', text: '' });
    for (const reply of ['', 'Lx', 'S']) expectUnexpected(() => parseStepReply(reply, where), 'step');

    expect(parsePeekReply('S', where)).toEqual({ status: 'settled' });
    expect(parsePeekReply('I300', where)).toEqual({ status: 'in_progress', leaseLeftMs: 300 });
    for (const reply of ['', 'I', 'Ix', 'Z300', 'S1']) expectUnexpected(() => parsePeekReply(reply, where), 'peek');
  });

  it('answers RECORD_CORRUPT to every function that finds a foreign row, with the reason it gives', () => {
    const parsers = [parseClaimReply, parseLeaseReply, parseStepReply, parsePeekReply];
    for (const parse of parsers) {
      const error = thrown(() => parse('Xhas schema version 2, expected 1', where));
      expect(isIdempotencyError(error) && error.code).toBe('RECORD_CORRUPT');
      expect(error.message).toContain(`${where} has schema version 2, expected 1: it was not written by this store`);
      expect(thrown(() => parse('X', where)).message).toContain(`${where} is unreadable: it was not written by this store`);
    }
  });

  it('quotes at most 200 characters of an unexpected reply (it may hold a whole stored result)', () => {
    const error = expectUnexpected(() => parseLeaseReply(`Q${'r'.repeat(10_000)}`, where), 'lease');
    expect(error.message).toContain(JSON.stringify(`Q${'r'.repeat(199)}`));
    expect(error.message.length).toBeLessThan(400);
  });
});

import { afterEach, describe, expect, it, vi } from 'vitest';
import { generateUuidV4 } from '../../src/client/index';
import { uuidV4FromBytes } from '../../src/client/generateKey';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('generateUuidV4', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('returns distinct UUID v4 strings', () => {
    const keys = new Set(Array.from({ length: 100 }, generateUuidV4));
    expect(keys.size).toBe(100);
    for (const key of keys) expect(key).toMatch(UUID_V4);
  });

  it('falls back to crypto.getRandomValues where randomUUID does not exist (plain-http pages)', () => {
    const realCrypto = globalThis.crypto;
    const getRandomValues = vi.fn((array: Uint8Array) => realCrypto.getRandomValues(array));
    vi.stubGlobal('crypto', { getRandomValues });
    const key = generateUuidV4();
    expect(key).toMatch(UUID_V4);
    expect(getRandomValues).toHaveBeenCalledTimes(1);
  });

  it('throws with the fix when there is no Web Crypto at all', () => {
    vi.stubGlobal('crypto', undefined);
    expect(() => generateUuidV4()).toThrow(/generateKey/);
  });

  it('sets the version and variant bits', () => {
    expect(uuidV4FromBytes(new Uint8Array(16).fill(0xff))).toBe('ffffffff-ffff-4fff-bfff-ffffffffffff');
    expect(uuidV4FromBytes(new Uint8Array(16))).toBe('00000000-0000-4000-8000-000000000000');
  });
});

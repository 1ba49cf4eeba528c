/**
 * A random UUID v4. Uses `crypto.randomUUID` where it exists, else `crypto.getRandomValues` (browsers expose only
 * the latter on pages served over plain http). Throws when neither exists: pass `generateKey` to the link then.
 */
export const generateUuidV4 = (): string => {
  const webCrypto = (globalThis as { crypto?: Partial<Crypto> }).crypto;
  if (typeof webCrypto?.randomUUID === 'function') return webCrypto.randomUUID();
  if (typeof webCrypto?.getRandomValues !== 'function') {
    throw new Error('trpc-idempotency: no Web Crypto API here; pass `generateKey` to idempotencyLink()');
  }
  return uuidV4FromBytes(webCrypto.getRandomValues(new Uint8Array(16)));
};

/** Formats 16 random bytes as a UUID v4 (RFC 9562: version nibble 4, variant bits 10). */
export const uuidV4FromBytes = (bytes: Uint8Array): string => {
  const b = Uint8Array.from(bytes);
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(b, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
};

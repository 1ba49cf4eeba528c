/**
 * Redis Cluster hash slot of a key (CRC16/XMODEM of the key, or of its first non-empty `{tag}`, mod 16384),
 * as in the Redis Cluster specification. The store uses it only to group a batch by slot: every key of one
 * script must live in one slot. Strings are hashed as UTF-8, as ioredis sends them.
 */
export const keySlot = (key: string): number => {
  const bytes = Buffer.from(key, 'utf8');
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(OPEN);
  if (open !== -1) {
    const close = bytes.indexOf(CLOSE, open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!;
  return crc & 0x3fff;
};

// ---- internal helpers ----

const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }

/** CRC16/XMODEM (polynomial 0x1021), one entry per byte value. */
const TABLE = Uint16Array.from({ length: 256 }, (_, byte) => {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  return crc;
});

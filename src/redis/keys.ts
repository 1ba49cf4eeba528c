import type { Cluster, Redis } from 'ioredis';

export interface RecordKeys {
  /** Key as the store passes it to ioredis (the client adds its own `keyPrefix`). */
  record(id: string): string;
  /** Key as Redis sees it, with the client's `keyPrefix`; it is also the pub/sub channel of the record. */
  full(id: string): string;
}

/** One hash tag per record (`<prefix>{<id>}`), never one tag on the whole prefix. */
export const createRecordKeys = (prefix: string, client: Redis | Cluster): RecordKeys => {
  const clientPrefix = client.options.keyPrefix ?? '';
  const record = (id: string): string => `${prefix}{${id}}`;
  return { record, full: (id) => `${clientPrefix}${record(id)}` };
};

import type { Cluster, Redis } from 'ioredis';
import { withDeadline } from './deadline';
import type { RecordKeys } from './keys';
import type { ReplyContext } from './replies';
import { unexpectedReply } from './replies';
import type { BatchScriptName, RunScript } from './scripts';
import { keySlot } from './slot';

/**
 * Most records one script run handles; a fuller queue is sent at once and a new batch starts. Not larger: at
 * concurrency 64 a few batches in flight let Redis run one while this process prepares the next (one batch
 * of 64 made them take turns: 16k against 25k fresh calls/s, tRPC app at c=64 on two cores, 3 s runs).
 */
export const MAX_BATCH = 32;

/**
 * A batch is also sent once its arguments reach this many characters (large results): one script run blocks
 * Redis for as long as it runs, so a batch never holds more than about a megabyte of arguments.
 */
export const MAX_BATCH_CHARS = 1 << 20;

export interface BatchQueueOptions<T> {
  client: Redis | Cluster;
  keys: RecordKeys;
  run: RunScript;
  script: BatchScriptName;
  /** ARGV entries that come before the per-record ones (the same for every record, e.g. graceMs). */
  shared: readonly string[];
  parse(reply: unknown, context: ReplyContext): T;
  timeoutMs: number;
  /**
   * Gets each record's outcome of a script run whose reply came after its callers were failed (`timeoutMs`
   * passed): the store undoes what nobody will act on (a late claim that acquired). Must not throw.
   */
  late?: (id: string, args: readonly string[], outcome: T) => void;
}

/**
 * Micro-batching, like DataLoader: the calls of one script made in the same tick go to Redis as one script run
 * (one EVALSHA) with one KEYS entry per record, sent on `process.nextTick` after the first call, so that
 * everything the current microtask burst enqueues joins (at concurrency 1 a batch of one, one tick later).
 * On a Cluster the batch is split by hash slot (all KEYS of one script must share a slot). Each batch has one
 * deadline; each caller gets its own outcome, or its own error (a corrupt record fails only its caller; a
 * failed or late script run fails every caller of that run with STORE_UNAVAILABLE).
 */
export const createBatchQueue = <T>(
  options: BatchQueueOptions<T>,
): ((id: string, args: readonly string[]) => Promise<T>) => {
  const { client, keys: recordKeys, run, script, shared, parse, timeoutMs, late } = options;
  const bySlot = client.isCluster;
  let queue: Entry<T>[] = [];
  let queuedChars = 0;
  let scheduled = false;

  const send = async (batch: Entry<T>[]): Promise<void> => {
    const keys: string[] = new Array<string>(batch.length);
    const args: string[] = shared.slice();
    for (let i = 0; i < batch.length; i++) {
      const entry = batch[i]!;
      keys[i] = recordKeys.record(entry.id);
      for (const arg of entry.args) args.push(arg);
    }
    const op = batch.length === 1 ? script : `${script} (batch of ${batch.length})`;
    let reply: unknown;
    let sent: Promise<unknown> | undefined;
    try {
      reply = await withDeadline(client, { op, timeoutMs }, () => (sent = run(script, keys, args)));
    } catch (error) {
      for (const entry of batch) entry.reject(error);
      // The run may still answer (it was stalled, not failed): hand what it did to `late`.
      if (late && sent) sent.then((lateReply) => settleLate(batch, lateReply), ignore);
      return;
    }
    // One context per batch: the full key is only spelled out for an error message.
    let current = batch[0]!;
    const context: ReplyContext = {
      script,
      get key() {
        return recordKeys.full(current.id);
      },
    };
    if (!Array.isArray(reply) || reply.length !== batch.length) {
      for (const entry of batch) {
        current = entry;
        entry.reject(unexpectedReply(reply, context));
      }
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      current = batch[i]!;
      try {
        current.resolve(parse(reply[i], context));
      } catch (error) {
        current.reject(error);
      }
    }
  };

  const settleLate = (batch: Entry<T>[], reply: unknown): void => {
    if (!late || !Array.isArray(reply) || reply.length !== batch.length) return;
    for (let i = 0; i < batch.length; i++) {
      const entry = batch[i]!;
      let outcome: T;
      try {
        outcome = parse(reply[i], { script, key: recordKeys.full(entry.id) });
      } catch {
        continue; // refused, corrupt or unreadable: nothing to undo
      }
      late(entry.id, entry.args, outcome);
    }
  };

  const flush = (): void => {
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    queuedChars = 0;
    if (!bySlot) {
      void send(batch);
      return;
    }
    const groups = new Map<number, Entry<T>[]>();
    for (const entry of batch) {
      const slot = keySlot(recordKeys.full(entry.id));
      const group = groups.get(slot);
      if (group) group.push(entry);
      else groups.set(slot, [entry]);
    }
    for (const group of groups.values()) void send(group);
  };

  const onTick = (): void => {
    scheduled = false;
    flush();
  };

  return (id, args) =>
    new Promise<T>((resolve, reject) => {
      queue.push({ id, args, resolve, reject });
      for (const arg of args) queuedChars += arg.length;
      if (queue.length >= MAX_BATCH || queuedChars >= MAX_BATCH_CHARS) flush();
      else if (!scheduled) {
        scheduled = true;
        process.nextTick(onTick);
      }
    });
};

// ---- internal helpers ----

const ignore = (): void => {};

/** One call waiting in a batch: its record, its per-record ARGV, its caller. */
interface Entry<T> {
  id: string;
  args: readonly string[];
  resolve(value: T): void;
  reject(error: unknown): void;
}

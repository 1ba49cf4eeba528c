import { IdempotencyError } from '../errors';

/** How much input the default fingerprint reads before it refuses (see the options of the same names). */
export interface InputBudget {
  maxInputDepth: number;
  maxInputNodes: number;
  maxInputChars: number;
}

/** The largest `maxInputDepth` accepted: every walk of the input (ours, superjson's) recurses once per level. */
export const MAX_INPUT_DEPTH_LIMIT = 1000;

/**
 * Refuses (INPUT_TOO_LARGE) an input past the budget, measured as if it were a tree: an object reached by several
 * paths counts at each, so an input and the same input with shared references (superjson's
 * `referentialEqualities`) pass or fail alike. The walk itself sees each object once and is linear in the input
 * as received: an object met again adds the counts it added the first time. A cycle is refused (as a tree it
 * never ends). Recursion never goes deeper than `maxInputDepth`.
 *
 * The encoders that run after it walk the input as a tree, and so does superjson (its annotations are
 * exponential in the depth of a shared structure); this check is what bounds them.
 */
export const checkInputBudget = (input: unknown, budget: InputBudget): void => {
  const scan: Scan = { budget, nodes: 0, chars: 0, seen: undefined };
  visit(scan, input, 0);
};

/** Values whose content can only be read asynchronously, or not at all without consuming it. */
export const isOpaque = (value: object): boolean =>
  (typeof Blob !== 'undefined' && value instanceof Blob) ||
  (typeof ReadableStream !== 'undefined' && value instanceof ReadableStream) ||
  Symbol.asyncIterator in value ||
  typeof (value as { pipe?: unknown }).pipe === 'function';

// ---- internal helpers ----

/** What a finished object added to the counts; `height` is -1 while the object is still being walked. */
interface Seen {
  height: number;
  nodes: number;
  chars: number;
}

interface Scan {
  budget: InputBudget;
  nodes: number;
  chars: number;
  /** Created on the first object: most inputs that reach here are objects, but a primitive needs none. */
  seen: Map<object, Seen> | undefined;
}

/** Counts `value` at `depth` objects below the root; returns its height (objects on its longest downward path). */
const visit = (scan: Scan, value: unknown, depth: number): number => {
  addNodes(scan, 1);
  if (typeof value === 'string') {
    addChars(scan, value.length);
    return 0;
  }
  if (typeof value !== 'object' || value === null) return 0;

  const seen = (scan.seen ??= new Map()).get(value);
  if (seen !== undefined) {
    if (seen.height < 0) throw refused('refers to itself (a cycle), which as a tree never ends');
    if (depth + seen.height > scan.budget.maxInputDepth) throw tooDeep(scan.budget);
    addNodes(scan, seen.nodes - 1); // the object itself is counted above
    addChars(scan, seen.chars);
    return seen.height;
  }
  if (depth + 1 > scan.budget.maxInputDepth) throw tooDeep(scan.budget);
  if (isOpaque(value)) return 1; // never walked: the encoders refuse it with an error naming the fix

  const entry: Seen = { height: -1, nodes: scan.nodes - 1, chars: scan.chars };
  scan.seen.set(value, entry);
  const below = visitChildren(scan, value, depth + 1);
  entry.height = below + 1;
  entry.nodes = scan.nodes - entry.nodes;
  entry.chars = scan.chars - entry.chars;
  return entry.height;
};

/** Walks what the encoders and superjson read of an object; returns the largest height among its children. */
const visitChildren = (scan: Scan, value: object, depth: number): number => {
  let height = 0;
  const child = (item: unknown) => {
    const h = visit(scan, item, depth);
    if (h > height) height = h;
  };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) child(value[i]);
  } else if (value instanceof Map) {
    for (const [k, v] of value) {
      child(k);
      child(v);
    }
  } else if (value instanceof Set) {
    for (const item of value) child(item);
  } else if (ArrayBuffer.isView(value)) {
    addNodes(scan, (value as { length?: number }).length ?? 0); // superjson turns a typed array into a list
  } else if (value instanceof RegExp) {
    addChars(scan, value.source.length);
  } else if (value instanceof URL) {
    addChars(scan, value.href.length);
  } else if (value instanceof Error) {
    addChars(scan, value.name.length + value.message.length);
  } else if (typeof FormData !== 'undefined' && value instanceof FormData) {
    for (const [name, entry] of value) {
      child(name);
      child(entry);
    }
  } else if (!(value instanceof Date)) {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      addChars(scan, key.length);
      child(record[key]);
    }
  }
  return height;
};

const addNodes = (scan: Scan, count: number): void => {
  scan.nodes += count;
  if (scan.nodes > scan.budget.maxInputNodes) {
    throw tooLarge(`holds more than maxInputNodes = ${scan.budget.maxInputNodes} values`);
  }
};

const addChars = (scan: Scan, count: number): void => {
  scan.chars += count;
  if (scan.chars > scan.budget.maxInputChars) {
    throw tooLarge(`has more than maxInputChars = ${scan.budget.maxInputChars} characters of strings and keys`);
  }
};

const tooDeep = (budget: InputBudget): IdempotencyError =>
  tooLarge(`is nested deeper than maxInputDepth = ${budget.maxInputDepth} levels`);

const tooLarge = (what: string): IdempotencyError =>
  refused(`${what} (an object reached by several paths counts once per path)`);

const refused = (what: string): IdempotencyError =>
  new IdempotencyError('INPUT_TOO_LARGE', `the input ${what}; the idempotency fingerprint refuses it before anything runs`);

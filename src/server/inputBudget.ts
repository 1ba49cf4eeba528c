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
 * as received: an object met again adds the counts it added the first time (past the first few hundred values;
 * before that, walking it again is as cheap). A cycle is refused as too deep (as a tree it never ends). Recursion
 * never goes deeper than `maxInputDepth`.
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

/** Values walked before objects are remembered (see visitObject). */
const MEMO_AFTER_NODES = 256;

/** What a finished object added to the counts. */
interface Seen {
  height: number;
  nodes: number;
  chars: number;
}

interface Scan {
  budget: InputBudget;
  nodes: number;
  chars: number;
  /** Objects finished after the first MEMO_AFTER_NODES values, by identity. */
  seen: Map<object, Seen> | undefined;
}

/** Counts `value` at `depth` objects below the root; returns its height (objects on its longest downward path). */
const visit = (scan: Scan, value: unknown, depth: number): number =>
  typeof value === 'object' && value !== null ? visitObject(scan, value, depth) : visitPrimitive(scan, value);

const visitPrimitive = (scan: Scan, value: unknown): number => {
  addNodes(scan, 1);
  if (typeof value === 'string') addChars(scan, value.length);
  return 0;
};

const visitObject = (scan: Scan, value: object, depth: number): number => {
  const seen = scan.seen?.get(value);
  if (seen !== undefined) {
    if (depth + seen.height > scan.budget.maxInputDepth) throw tooDeep(scan.budget);
    addNodes(scan, seen.nodes);
    addChars(scan, seen.chars);
    return seen.height;
  }
  if (depth + 1 > scan.budget.maxInputDepth) throw tooDeep(scan.budget);
  const nodes = scan.nodes;
  const chars = scan.chars;
  addNodes(scan, 1);
  const height = visitChildren(scan, value, depth + 1) + 1;
  // Remembered once the input is past MEMO_AFTER_NODES values: an object finished before that holds fewer, so
  // walking it again costs at most that many steps per extra path, and small inputs never pay for a Map.
  if (scan.nodes >= MEMO_AFTER_NODES) {
    (scan.seen ??= new Map()).set(value, { height, nodes: scan.nodes - nodes, chars: scan.chars - chars });
  }
  return height;
};

/**
 * Walks what the encoders and superjson read of an object (children at `depth`); returns the largest height
 * among its children. Plain objects and arrays first: they are nearly every object of an input.
 */
const visitChildren = (scan: Scan, value: object, depth: number): number => {
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto === Object.prototype || proto === null) return visitRecord(scan, value as Record<string, unknown>, depth);
  if (proto === Array.prototype) return visitList(scan, value as unknown[], depth);
  if (proto === Date.prototype) return 0;
  if (Array.isArray(value)) return visitList(scan, value, depth);
  if (value instanceof Date) return 0;
  if (isOpaque(value)) return 0; // never walked (a stream's insides): the encoders refuse it, naming the fix
  if (value instanceof Map) {
    let height = 0;
    for (const [k, v] of value) height = Math.max(height, visit(scan, k, depth), visit(scan, v, depth));
    return height;
  }
  if (value instanceof Set) return visitList(scan, [...value], depth);
  if (ArrayBuffer.isView(value)) {
    addNodes(scan, (value as { length?: number }).length ?? 0); // superjson turns a typed array into a list
    return 0;
  }
  if (value instanceof RegExp) addChars(scan, value.source.length);
  else if (value instanceof URL) addChars(scan, value.href.length);
  else if (value instanceof Error) addChars(scan, value.name.length + value.message.length);
  else if (typeof FormData !== 'undefined' && value instanceof FormData) {
    for (const [name, entry] of value) {
      visitPrimitive(scan, name);
      visit(scan, entry, depth);
    }
  } else return visitRecord(scan, value as Record<string, unknown>, depth); // class instances, as superjson copies them
  return 0;
};

const visitRecord = (scan: Scan, record: Record<string, unknown>, depth: number): number => {
  let height = 0;
  for (const key in record) {
    if (!Object.prototype.hasOwnProperty.call(record, key)) continue;
    addChars(scan, key.length);
    const item = record[key];
    const h = typeof item === 'object' && item !== null ? visitObject(scan, item, depth) : visitPrimitive(scan, item);
    if (h > height) height = h;
  }
  return height;
};

const visitList = (scan: Scan, list: readonly unknown[], depth: number): number => {
  let height = 0;
  for (let i = 0; i < list.length; i++) {
    const item = list[i];
    const h = typeof item === 'object' && item !== null ? visitObject(scan, item, depth) : visitPrimitive(scan, item);
    if (h > height) height = h;
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
  tooLarge(`is nested deeper than maxInputDepth = ${budget.maxInputDepth} levels, or refers to itself (a cycle)`);

const tooLarge = (what: string): IdempotencyError =>
  new IdempotencyError(
    'INPUT_TOO_LARGE',
    `the input ${what} (an object reached by several paths counts once per path); the idempotency fingerprint ` +
      'refuses it before anything runs',
  );

/**
 * Finds request headers in a tRPC ctx, whatever adapter built it: a Node `IncomingMessage` (standalone,
 * express), a Fetch `Request` or `Headers` (fetch adapter, Next.js), or a plain headers object. The object the
 * headers hang off (the "carrier") also identifies the HTTP request for replay reporting.
 *
 * A plain record read by `readHeader`, not an object with a `get` closure: this runs once per mutation and once
 * more in `responseMeta`, and every closure is one more allocation and a lazy-compile stub on first call.
 */
export interface RequestHeaders {
  /** Identifies the request: the same object for every call of one HTTP request. */
  carrier: object;
  bag: HeaderBag;
  /** How `bag` is read: a Fetch `Headers`, Node's lower-cased record, or a record in any case. */
  kind: 'fetch' | 'lower' | 'any';
}

type HeaderBag = { get(name: string): string | null } | Record<string, unknown>;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

const kindOf = (bag: HeaderBag, lowerCased: boolean): RequestHeaders['kind'] =>
  typeof bag.get === 'function' ? 'fetch' : lowerCased ? 'lower' : 'any';

/** The header `name` (lower case), `undefined` when absent; repeated values are joined with `, `. */
export const readHeader = (request: RequestHeaders, name: string): string | undefined => {
  const { bag, kind } = request;
  if (kind === 'fetch') return (bag as { get(name: string): string | null }).get(name) ?? undefined;
  const record = bag as Record<string, unknown>;
  let value = record[name];
  if (value === undefined && kind === 'any') {
    const match = spellingsOf(record).get(name);
    value = match === undefined ? undefined : record[match];
  }
  if (Array.isArray(value)) return value.join(', ');
  return typeof value === 'string' ? value : undefined;
};

/**
 * A record's header names by their lower-case form, built on its first case-insensitive read. Every keyed call of
 * a batch reads the same record, and scanning it per read cost (calls x headers) toLowerCase calls per request:
 * 1,500 calls and 900 headers, both within Node's 16 KB head, blocked the event loop for about a second. A
 * request's headers do not change while it is served, so the names are read once.
 */
const spellings = new WeakMap<object, Map<string, string>>();

const spellingsOf = (record: Record<string, unknown>): Map<string, string> => {
  let names = spellings.get(record);
  if (names === undefined) {
    names = new Map();
    for (const key of Object.keys(record)) {
      const lower = key.toLowerCase();
      // The first spelling wins, as a scan in key order would find it.
      if (!names.has(lower)) names.set(lower, key);
    }
    spellings.set(record, names);
  }
  return names;
};

export const findRequestHeaders = (ctx: unknown): RequestHeaders | undefined => {
  if (!isObject(ctx)) return undefined;
  // Node's IncomingMessage (it has rawHeaders) lower-cases header names itself: no need to scan.
  const req = ctx.req;
  if (isObject(req) && isObject(req.headers)) return fromCarrier(req);
  const request = ctx.request;
  if (isObject(request) && isObject(request.headers)) return fromCarrier(request);
  const headers = ctx.headers;
  if (isObject(headers)) return { carrier: headers, bag: headers as HeaderBag, kind: kindOf(headers as HeaderBag, false) };
  return undefined;
};

const fromCarrier = (carrier: Record<string, unknown>): RequestHeaders => {
  const bag = carrier.headers as HeaderBag;
  return { carrier, bag, kind: kindOf(bag, Array.isArray(carrier.rawHeaders)) };
};

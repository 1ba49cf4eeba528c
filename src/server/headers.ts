/**
 * Finds request headers in a tRPC ctx, whatever adapter built it: a Node `IncomingMessage` (standalone,
 * express), a Fetch `Request` or `Headers` (fetch adapter, Next.js), or a plain headers object. The object the
 * headers hang off (the "carrier") also identifies the HTTP request for replay reporting.
 */
export interface RequestHeaders {
  /** Identifies the request: the same object for every call of one HTTP request. */
  carrier: object;
  get(name: string): string | undefined;
}

type HeaderBag = { get(name: string): string | null } | Record<string, unknown>;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

const fromBag = (carrier: object, bag: HeaderBag, lowerCased: boolean): RequestHeaders => {
  if (typeof bag.get === 'function') {
    const headers = bag as { get(name: string): string | null };
    return { carrier, get: (name) => headers.get(name) ?? undefined };
  }
  const record = bag as Record<string, unknown>;
  return {
    carrier,
    get: (name) => {
      let value = record[name];
      if (value === undefined && !lowerCased) {
        const match = Object.keys(record).find((k) => k.toLowerCase() === name);
        value = match === undefined ? undefined : record[match];
      }
      if (Array.isArray(value)) return value.join(', ');
      return typeof value === 'string' ? value : undefined;
    },
  };
};

/** `name` must be lower case. */
export const findRequestHeaders = (ctx: unknown): RequestHeaders | undefined => {
  if (!isObject(ctx)) return undefined;
  for (const field of ['req', 'request'] as const) {
    const req = ctx[field];
    // Node's IncomingMessage (it has rawHeaders) lower-cases header names itself: no need to scan.
    if (isObject(req) && isObject(req.headers)) return fromBag(req, req.headers as HeaderBag, Array.isArray(req.rawHeaders));
  }
  const headers = ctx.headers;
  if (isObject(headers)) return fromBag(headers, headers as HeaderBag, false);
  return undefined;
};

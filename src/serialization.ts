import superjson from 'superjson';

/** Turns procedure results into text for the store and back. Must round-trip every value you return. */
export interface Serializer {
  serialize(value: unknown): string;
  deserialize(text: string): unknown;
}

/** superjson: Dates, Maps, Sets, BigInts, undefined and more come back as they went in. */
export const superjsonSerializer: Serializer = {
  serialize: (value) => superjson.stringify(value),
  deserialize: (text) => superjson.parse(text),
};

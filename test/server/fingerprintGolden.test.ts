import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { fingerprintInput } from '../../src/server/fingerprint';

// Fingerprints are stored: a new version must compute the same ones, or every in-flight key would turn into a
// mismatch on upgrade. One input of every type the fingerprint supports, alone and nested (in an object, a list
// and a Map); the values were computed by 0.1.0 (e4d248a), before the input budget existed.
class Money { constructor(readonly cents: number, readonly currency: string) {} }
superjson.registerClass(Money, { identifier: 'golden.Money' });
class Celsius { constructor(readonly degrees: number) {} }
superjson.registerCustom<Celsius, string>(
  { isApplicable: (v): v is Celsius => v instanceof Celsius, serialize: (v) => String(v.degrees), deserialize: (s) => new Celsius(Number(s)) },
  'golden.Celsius',
);
const marker = Symbol('golden.marker');
superjson.registerSymbol(marker, 'golden.marker');
const form = () => { const f = new FormData(); f.append('account', 'a1'); f.append('amount', '1'); return f; };
const deep = (levels: number, leaf: unknown): unknown => { let v = leaf; for (let i = 0; i < levels; i++) v = { d: v }; return v; };
const chain = (levels: number, wrap: (v: unknown) => unknown): unknown => { let v: unknown = 1; for (let i = 0; i < levels; i++) v = wrap(v); return v; };
// Subclasses of the plain types go through superjson (only the built-ins themselves are plain data).
class List<T> extends Array<T> {}
class Stamp extends Date {}
class Dict<K, V> extends Map<K, V> {}
class Bag<T> extends Set<T> {}
class Pattern extends RegExp {}
class Link extends URL {}
const CASES: [string, () => unknown][] = [
  ['string', () => 'plain'],
  ['empty string', () => ''],
  ['escaped string', () => 'a"b\\c\n\u0001é😀'],
  ['integer', () => 42],
  ['negative float', () => -1.5],
  ['-0', () => -0],
  ['NaN', () => Number.NaN],
  ['Infinity', () => Number.POSITIVE_INFINITY],
  ['-Infinity', () => Number.NEGATIVE_INFINITY],
  ['1e21', () => 1e21],
  ['true', () => true],
  ['false', () => false],
  ['null', () => null],
  ['undefined', () => undefined],
  ['bigint', () => 2n ** 70n],
  ['negative bigint', () => -5n],
  ['empty object', () => ({})],
  ['null-prototype object', () => Object.assign(Object.create(null), { b: 1, a: 2 })],
  ['empty array', () => []],
  ['array', () => [1, 'a', null, undefined, true]],
  ['sparse-free nested arrays', () => [[1, [2]], []]],
  ['Date', () => new Date(1_700_000_000_000)],
  ['invalid Date', () => new Date(Number.NaN)],
  ['Map', () => new Map<unknown, unknown>([['a', 1], [2, { b: new Date(0) }]])],
  ['empty Map', () => new Map()],
  ['Set', () => new Set([1, 'x', 2n])],
  ['empty Set', () => new Set()],
  ['RegExp', () => /a+"b/gi],
  ['URL', () => new URL('https://x.test/a?b=1#c')],
  ['FormData', form],
  ['registered class', () => new Money(100, 'EUR')],
  ['custom transformer', () => new Celsius(21.5)],
  ['registered symbol', () => marker],
  ['Uint8Array', () => new Uint8Array([1, 2, 3])],
  ['Error', () => new Error('boom')],
  ['65 levels', () => deep(64, 1)],
  ['66 levels (the deepest plain object)', () => deep(65, 1)],
  // Added later; their values were computed by 0.1.0's fingerprint.ts (e4d248a) as well.
  ['67 levels (superjson path)', () => chain(66, (d) => ({ d }))],
  ['67 levels of lists (superjson path)', () => chain(66, (v) => [v])],
  ['67 levels of Sets (superjson path)', () => chain(66, (v) => new Set([v]))],
  ['67 levels of Map values (superjson path)', () => chain(66, (v) => new Map([['k', v]]))],
  ['67 levels of Map keys (superjson path)', () => chain(66, (v) => new Map([[v, 'v']]))],
  ['Array subclass', () => List.from([1, 'a'])],
  ['Date subclass', () => new Stamp(1_700_000_000_000)],
  ['Map subclass', () => new Dict([['a', 1]])],
  ['Set subclass', () => new Bag([1, 'x'])],
  ['RegExp subclass', () => new Pattern('a+', 'g')],
  ['URL subclass', () => new Link('https://x.test/a')],
  ['superjson path with undefined and a null-prototype object', () => ({
    price: new Money(1, 'EUR'),
    list: [undefined, 1],
    u: undefined,
    np: Object.assign(Object.create(null) as object, { b: 1, a: 2 }),
  })],
];
const NESTED: [string, () => unknown][] = CASES.filter(([n]) => !n.includes('levels')).map(([n, make]) => [
  n,
  () => ({ z: 0, v: make(), list: [make()], m: new Map([['k', make()]]) }),
]);

const GOLDEN: Record<string, string> = Object.fromEntries([
  ["top: string", "xoXgfLshzn0vjqJb8Zr8DjUXN9SGfpRHyjIQpD3P0PU"],
  ["top: empty string", "z_jYBycXv8uDVQ7j8GF6mlLnSEkhIifR085s_1PfMI0"],
  ["top: escaped string", "NOnDKMg6cyNbA46UB5W8gAz9aK9sft_0eb1sYibJFic"],
  ["top: integer", "xk3BqMt5Y_dpoyx1ozGfPzZtVJIN7tzVowXO7oBaT1I"],
  ["top: negative float", "bJLjLl7b9b9cIP63hrXCovlJZq0VFPy8bq0ST2hZ6A0"],
  ["top: -0", "xUQ7-OwdIlIT6hVIvhUg5iP105c4mjqmjAd5ZJ7w84g"],
  ["top: NaN", "b4gGOp0S_3mNkUi9zRvUEbKq2SHBohpzOlTH7Xt_Uis"],
  ["top: Infinity", "PpOjI7KncJUnAbnJAgA-hWwKAWRRClIHMmfGkTgKAyU"],
  ["top: -Infinity", "Atn4hkCiknsoS3Zg7GYGDytI8DpNusALcCSztfEujFk"],
  ["top: 1e21", "sAITMGTkyzAYbztbOeFwZJdDt-gdlAjpPqa8eGGso5E"],
  ["top: true", "51sR2mk9e7UnOYXc-fAnKUVdp-fIDlSgYV4A7CrnbY4"],
  ["top: false", "XsKRq90ecxf1M1uMIjc47RTvQmrGqkRbth74XRHYqFM"],
  ["top: null", "WJ8jdu4sGK_HC5KiQsBa147gnv30H2Cc7eLfb_fm78I"],
  ["top: undefined", "S01VieEtMtWJNVrGsUFr8pKKPahvWNbRaDRArEG4ECo"],
  ["top: bigint", "f2XfY5cNYzuYmO4Z2hbOj4dNgKJUe19iWKZtZwam-Pg"],
  ["top: negative bigint", "sGX5DdogrjDZrnXaAcXmpMo4g47mVYGI6H5yBvEa7O4"],
  ["top: empty object", "gG2yISYereRMiG2lMXrbiUgi0Ubw9p7QCeWcroOvy9Y"],
  ["top: null-prototype object", "kzQq3I7r-UA4on_EEOqEvAjj0n0adsFsfxri3lkcoC4"],
  ["top: empty array", "Nd_jZqYF1hjUR__ojNYYp0IAPGj9-wdz1ovFuix0ICU"],
  ["top: array", "9OzKoNhbwfpERg5aUHE1GSpkmermyBS4tTcJPk2h8_g"],
  ["top: sparse-free nested arrays", "9VsfsX6MKFMJrXc5TtBafhBcg4nyJw_T2hcSsh0DoWI"],
  ["top: Date", "NHbUhHgGJmtxbFq-pJli-8hcEqv-Knq_Qsw1Hmc0cTo"],
  ["top: invalid Date", "xunqhhTVFviYUeoUhyb00XwNnql56c8a3j573VWvJcM"],
  ["top: Map", "jYvBAsnGylhL7BXXR6NMJSnyU3lKBdREsJNJWFnLMIQ"],
  ["top: empty Map", "TdgTpz0vmsizPpwUnmEJ7tCKuNKDiGO_15HwtJZY5Tc"],
  ["top: Set", "ubq3bYMtrJ6atI3t-fKfT6jSuJxESB_0aPUX6-rnyuU"],
  ["top: empty Set", "jUKBcJn5Q4l0XxLKWdgJj16rXkewcNFrVYY4L2VBoww"],
  ["top: RegExp", "c2MusqNfnqwSVR8E1wI9adJmTWlPaYVIPa0PcV0zRAI"],
  ["top: URL", "fJ7dM7tujYfisfJeVzisI2eAkyH4RU4WisGvDESpHCE"],
  ["top: FormData", "wDZk329cQIieFfQ4jSZUeVZEe-Hrdw-pe0JtsOf5yY0"],
  ["top: registered class", "anM0sj72Z2F5nMKfWsiwGECWtUDfJ7XyKq3rnWPneZE"],
  ["top: custom transformer", "IjNEHkTDG8LcGO9egO1juuQHFbTRFmnvtN2e0xnynhw"],
  ["top: registered symbol", "OKzCTq1GCY2bfuto-VmwqhrfGQqOF16krcNQU6RWVTA"],
  ["top: Uint8Array", "6RC7N03gsAjT48HISMMiWHPVyKMWNfDOA-S0mCGjD3E"],
  ["top: Error", "w0PWfNKnFd-TCPdlAagIYxgJy4sUtXJiefXvQa4f4OU"],
  ["top: 65 levels", "pqgicXigfiD2O--75lhGdRrijUBPwhVLoRmzz0CaqFY"],
  ["top: 66 levels (the deepest plain object)", "lcktEvD9_WMc0RseMJYB_Tt6eJueH40Ktl5dVoI5hkM"],
  ["top: 67 levels (superjson path)", "DfpcBCLeXCDCSPUX9duSSpnHD9djnksrXC965ZLlLIk"],
  ["top: 67 levels of lists (superjson path)", "ylzq8iiamcvA8w64-MwCCYDKMhM9fqNbTbWRoG-Lu_E"],
  ["top: 67 levels of Sets (superjson path)", "nMt8LoIWB17O5sOrwNt0Hk7s7QjbUVpnI5-ciSN0qsI"],
  ["top: 67 levels of Map values (superjson path)", "sL1fWMBvlA3rTfiBaC_RdR-n43eb_7Zt9r0266xzh1c"],
  ["top: 67 levels of Map keys (superjson path)", "ASpnPTHdaPDhIbYLFzvY-jgyuPPA3uRzkm0lAVJYGxc"],
  ["top: Array subclass", "y-wiEJRZTUCrNTT102xH_9jrcXMVbDB7wQJY_GF_kTQ"],
  ["top: Date subclass", "olnZU-ObMd4jJfD4eHX6nJsW9RXGAXC-NRmOfR7NofA"],
  ["top: Map subclass", "jq9diY96xYBRCqd-7fzhqwyXiK6sUYl9Vcpl3snZ7PA"],
  ["top: Set subclass", "1pa5wV4Tekn-N_tjeOKeQ2cvbttD2XJhNT3ll68RJZA"],
  ["top: RegExp subclass", "MKtw65OMGAUWNICNFMPMQBNR7iXSCDeHgHCivgrIfTw"],
  ["top: URL subclass", "WPD-ZmiEA3kDpzIjcJv_sFWz3xbRmDoBK4b8ts3Y-e4"],
  ["top: superjson path with undefined and a null-prototype object", "b6SD4vGjq1ezzHXWHF54Fo7MtGkXs9egcxdky4OnDwE"],
  ["nested: string", "mpdAXeRYGTtluLjE-XqilTE8A45xeWK2rSTozsfDYpw"],
  ["nested: empty string", "L_bktjRBp35tj88BvIEgyBOJNZ8eL1i45D5G_ufnn9k"],
  ["nested: escaped string", "A_nKzr8SLT4wa27DPngQFY9feBJZ2L9LQPSQg262Q78"],
  ["nested: integer", "2cfIvlz6KL5RMoo40pyMi3siriw4ywHkZYa1WouCe5o"],
  ["nested: negative float", "KTeonx32qw8FejVBoFrV78gkw3cd3K35Bp_lZgRZVqg"],
  ["nested: -0", "OTpFJb1cAS8tOwXAL2KcPNbuj-Qfyxv2_95USn--atk"],
  ["nested: NaN", "FaGBq3-sb8cYKP92t7FrSN2Ti8St4uGgFV_WZLM6fuk"],
  ["nested: Infinity", "_2XlQKsRRlDTKP4jn03EmiM8EG6NsKnJKhMw6spyoM8"],
  ["nested: -Infinity", "pmPuvVTf9kMAwR-Pckw71bokffDjBj3znrrrgvbHdiQ"],
  ["nested: 1e21", "dsxZhAhc59oxa6PwNZDPbGnKPiukdH1NX24TzBZFdAc"],
  ["nested: true", "SG6VTLBOvkPqUbRzdCa07z3_3YWeWC-SaMPAyccz7o8"],
  ["nested: false", "b3uzYBA2IvcAU-9uGGczor-hk2gMrE3V593N0xicR8A"],
  ["nested: null", "NW4fwp6te6QxqYMnCM0lW-a7qO-fe-FfYGUQaIsTG_4"],
  ["nested: undefined", "IliqE5nZzBdyPgltV63idnxFkoRLtJeDwJcmuSToPWQ"],
  ["nested: bigint", "T0h4RF8UW8CjSfXc94YA7yNIYDGgktCsc2McsGX9FXQ"],
  ["nested: negative bigint", "CptcDfeQUtZc2YlrKr4nEvJRfegaucNoCPJK99hVrXU"],
  ["nested: empty object", "6UnEfcrvIGChQj-xDG_WMXvZ7qqEs6KTbjPXLSpLq_U"],
  ["nested: null-prototype object", "YLXOD1bxhNOrtq-_xrqJvz4LHrqeTczfrhshgrRHA40"],
  ["nested: empty array", "zpe7WtEnhLJ8dWzOUi6LMrLFOrNKTfrpL4pdK32Ogvk"],
  ["nested: array", "UEbkdtt5AHh_Qo9oqieP2u0PPg2DtETMJvwp6lilpQE"],
  ["nested: sparse-free nested arrays", "xsRkveMaVk0e_z-8d_litaL5JcfunQO6B0qDyaY7NPg"],
  ["nested: Date", "o7ePw4gO-mTjymCxJN3YkleOplW0fJMFGdowRUdYXDI"],
  ["nested: invalid Date", "JRBkO9qIdvnhNVmc_KZ_KVd8HGNrUf0T9JNfa1aIeNE"],
  ["nested: Map", "kKhFs0QB8rn1nVGdUCC9-RGlAlqjp8HqnlXden7MXAM"],
  ["nested: empty Map", "mkJ26qma1-xFcKO27eVbo-DdY5eObjZsWePr7ogB-pw"],
  ["nested: Set", "5BNq6YxkRzCkMd6ufkWXhhsZLQ4kLMCiCDa0AXh7djY"],
  ["nested: empty Set", "C2UVpzZLZuwKzzhgFRoR1_JkaYDE4m5Ae_Wroh8NpbY"],
  ["nested: RegExp", "nBWXXZx48X5-iTrq1GttjvPQc3CKPPJgFiWE3KZD-ig"],
  ["nested: URL", "16ka8tt3YrbibOokqntjzXitJGIP1HCsRUh7UxtQ4Zc"],
  ["nested: FormData", "viBSGjUCrL_5tWF7mYT77b0Lfqh9JlAQr44j4xJzmk0"],
  ["nested: registered class", "6G_XvGiFWp-XvcRlO7j1aiiuDQuURbvM5Cqdqw5OWlg"],
  ["nested: custom transformer", "65kz_VJGpUKWA366PnvIX1V9Caedd54c0e0L1vfbgAE"],
  ["nested: registered symbol", "gzvPeIPJoCs8Vt_VEi64cT_rIEn2pGa55rhPUJVR0WQ"],
  ["nested: Uint8Array", "NOxaEK7XQXwv1rb6bFkFsHhluU0llbSqZzwiz37Tkwo"],
  ["nested: Error", "yhzAjNG7NP4DL5ib4JQEMWhOhppuC3g0mtQ-LELGw1Q"],
  ["nested: Array subclass", "xo6jOng1kGVBzkUzVjVpvEOC-s-nndN42jpkMyf-QFc"],
  ["nested: Date subclass", "ge0e_3_b0DxwyGvrIBKCio8a_Gp611qP8B-ZF23POP8"],
  ["nested: Map subclass", "VmP9sBP7R9Gl2P__rYYjt1ch3mSYzNEG-dnHDOp1-bs"],
  ["nested: Set subclass", "1VKrZRLjCV7hFlvZB1C1FCpSs1Hn7yJxqPlVgyXfoqA"],
  ["nested: RegExp subclass", "URzyxHNpMmGioLNwOUUit4kQz3_CuzmWj-DVCizyscs"],
  ["nested: URL subclass", "ybff3rcKKc0dVhenu39s5eAvQfP21aitFD7o__8cziI"],
  ["nested: superjson path with undefined and a null-prototype object", "d_YTkZsiYeAGpm3m0fPB-N21iyW8_3ky8u6oVsh2duc"],
]);

describe('fingerprintInput golden values (0.1.0)', () => {
  const all = [...CASES.map(([n, make]) => [`top: ${n}`, make] as const), ...NESTED.map(([n, make]) => [`nested: ${n}`, make] as const)];

  it('has a golden value for every case', () => {
    expect(all.map(([name]) => name).sort()).toEqual(Object.keys(GOLDEN).sort());
  });

  it.each(all)('%s', (name, make) => {
    expect(fingerprintInput(make())).toBe(GOLDEN[name]);
  });
});

// @ts-check
/**
 * Mutation testing (Stryker 9.6, the last line that runs on Node 20, with its vitest runner): `npm run test:mutation`.
 * Not part of `npm test`; it takes minutes per file (README, Development).
 *
 * One file at a time: `npm run test:mutation -- --mutate src/server/key.ts` (the CLI flag replaces `mutate` below;
 * a line range works too: `--mutate src/server/key.ts:10-40`).
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: {
    configFile: 'vitest.config.ts',
    // Only the test files that import a mutated file (directly or not) run in the dry run.
    related: true,
  },
  // Each mutant runs only the tests that executed its code in the dry run.
  coverageAnalysis: 'perTest',
  // The safety-critical code: keys, fingerprints, the middleware's claim/lease/finish path, the stores a
  // mutation's result is kept in (besides Redis, tested through real Redis elsewhere), and the client's retry policy.
  mutate: [
    'src/server/key.ts',
    'src/server/fingerprint.ts',
    'src/server/resolveKey.ts',
    'src/server/middleware.ts',
    'src/server/keyedCall.ts',
    'src/server/finish.ts',
    'src/server/lease.ts',
    'src/server/steps.ts',
    'src/stores/**/*.ts',
    'src/client/idempotentRetry.ts',
  ],
  // Left out of the sandbox, so these tests never run under Stryker: they run the code in another process (the
  // demo through tsx, the browser page in Chromium, the esbuild bundle check), where a mutant is never switched on
  // and coverage is not seen, so they cost minutes and kill nothing. The examples' tests go with `examples/`
  // (they exercise the same middleware paths as test/server and test/client, through demo apps). Bench is not a test.
  ignorePatterns: [
    '/test/browser',
    '/test/demo',
    '/test/examples',
    '/test/client/browserBundle.test.ts',
    '/examples',
    '/bench',
    '/docs',
    '/coverage',
    '/dist',
    '/.bench-out',
    '/.tmp',
  ],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
  // A mutant that makes a test wait out a lease or a timeout counts as killed by timeout, not as a hang.
  timeoutMS: 10_000,
  thresholds: { high: 90, low: 85, break: null },
};

import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const fromRoot = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

export const vitestConfig = defineConfig({
  // Examples import the package by name, as users do; these map the names to the sources (as tsconfig paths do).
  resolve: {
    alias: [
      { find: /^trpc-idempotency$/, replacement: fromRoot('./src/index.ts') },
      { find: /^trpc-idempotency\/redis$/, replacement: fromRoot('./src/redis/index.ts') },
      { find: /^trpc-idempotency\/client$/, replacement: fromRoot('./src/client/index.ts') },
      { find: /^trpc-idempotency\/postgres$/, replacement: fromRoot('./src/stores/postgres/index.ts') },
      { find: /^trpc-idempotency\/otel$/, replacement: fromRoot('./src/otel/index.ts') },
      { find: /^trpc-idempotency\/testing$/, replacement: fromRoot('./src/testing/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/globalSetup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});

// vitest reads the default export of its config file.
export default vitestConfig;

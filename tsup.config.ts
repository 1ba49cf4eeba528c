import { defineConfig } from 'tsup';

export const tsupConfig = defineConfig({
  entry: {
    index: 'src/index.ts',
    'redis/index': 'src/redis/index.ts',
    'client/index': 'src/client/index.ts',
    'stores/postgres/index': 'src/stores/postgres/index.ts',
    'otel/index': 'src/otel/index.ts',
    'testing/index': 'src/testing/index.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  splitting: true,
  treeshake: true,
  loader: { '.lua': 'text' },
});

// tsup reads the default export of its config file; the project otherwise uses named exports only.
export default tsupConfig;

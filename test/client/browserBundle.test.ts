import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const entry = fileURLToPath(new URL('../../src/client/index.ts', import.meta.url));
const NODE_BUILTINS = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));

const bundle = async (external: string[]) => {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
    external,
  });
  const [output] = Object.values(result.metafile.outputs);
  return { result, imports: output?.imports.map((i) => i.path) ?? [], inputs: Object.keys(result.metafile.inputs), text: result.outputFiles[0]?.text ?? '' };
};

describe('trpc-idempotency/client in a browser bundle (esbuild, platform: browser)', () => {
  it('builds with @trpc/client external and imports nothing but @trpc packages', async () => {
    const { result, imports, inputs, text } = await bundle(['@trpc/client', '@trpc/server', '@trpc/server/*']);
    expect(result.errors).toEqual([]);
    expect(result.warnings).toEqual([]);
    expect(imports.length).toBeGreaterThan(0);
    for (const path of imports) expect(path).toMatch(/^@trpc\/(client|server(\/observable)?)$/);
    expect(inputs.filter((path) => !path.startsWith('src/client/') && path !== 'src/wire.ts' && path !== 'src/constants.ts')).toEqual([]);
    expect(text).not.toMatch(/from\s*["'](node:|crypto|http|https|net|stream)["']/);
  });

  it('builds with @trpc/client bundled, pulling in no Node built-in', async () => {
    const { result, imports, inputs } = await bundle([]);
    expect(result.errors).toEqual([]);
    expect(imports).toEqual([]);
    expect(inputs.filter((path) => NODE_BUILTINS.has(path))).toEqual([]);
    expect(inputs.some((path) => path.includes('@trpc/client'))).toBe(true);
    expect(inputs.some((path) => /src\/(server|stores|redis)\/|src\/errors\.ts/.test(path))).toBe(false);
  });
});

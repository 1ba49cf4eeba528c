/**
 * Every TypeScript block in README.md and docs/*.md compiles, as a reader would paste it into a file of their
 * own: strict, with this repository's compiler options, `trpc-idempotency`, `/redis` and `/client` resolved to
 * src/ through tsconfig paths (as the examples do), everything else from node_modules.
 *
 * Rules for writing blocks:
 * - A block is a whole module: it imports what it uses and declares what it needs.
 * - ```ts title="server.ts" names the file; other blocks import it by that name (`import type { AppRouter }
 *   from './server.js'`). Titles are shared by all documents (docs/ blocks build on the README's Quick start
 *   `server.ts`), so each title is used once.
 * - ```ts fragment marks a block that is a piece of a larger file (one option, one link, one call inside a
 *   procedure): it is not compiled. Keep them few and short; prefer a whole module.
 */
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import type { Snippet } from './snippets';
import { extractSnippets } from './snippets';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const docs = ['README.md', ...readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)];
const snippets = docs.flatMap((doc) => extractSnippets(root, doc));
const compiled = snippets.filter((snippet) => !snippet.fragment);

/** Where a block lives while it is compiled: a folder that does not exist, inside the repository (for node_modules). */
const snippetDir = join(root, 'test/docs/.snippets');
const fileOf = (snippet: Snippet): string =>
  join(snippetDir, snippet.title ?? `${snippet.doc.replace(/\W/g, '_')}_${snippet.line}.${snippet.meta.includes('tsx') ? 'tsx' : 'ts'}`);

/** Type-checks the blocks in one program; returns each block's diagnostics as `doc:line:column message`. */
const typeCheck = (blocks: Snippet[]): Map<Snippet, string[]> => {
  const config = ts.readConfigFile(join(root, 'tsconfig.json'), ts.sys.readFile);
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  const sources = new Map(blocks.map((block) => [fileOf(block), block]));
  const host = ts.createCompilerHost({ ...options, noEmit: true });
  const { fileExists, readFile, directoryExists } = host;
  host.directoryExists = (dir) => dir === snippetDir || (directoryExists?.call(host, dir) ?? true);
  host.fileExists = (file) => sources.has(file) || fileExists.call(host, file);
  host.readFile = (file) => sources.get(file)?.code ?? readFile.call(host, file);
  const program = ts.createProgram({ rootNames: [...sources.keys()], options: { ...options, noEmit: true }, host });

  const found = new Map<Snippet, string[]>(blocks.map((block) => [block, []]));
  for (const [file, block] of sources) {
    const source = program.getSourceFile(file);
    if (!source) throw new Error(`${block.doc}:${block.line}: not compiled`);
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
    for (const diagnostic of diagnostics) {
      const at = diagnostic.start === undefined ? undefined : source.getLineAndCharacterOfPosition(diagnostic.start);
      const where = at ? `${block.doc}:${block.line + at.line}:${at.character + 1}` : block.doc;
      found.get(block)?.push(`${where} TS${diagnostic.code}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`);
    }
  }
  return found;
};

/** A block that must not compile: it shows the check itself can fail, and where it says so. */
const probe: Snippet = { doc: 'README.md', line: 40, meta: '', title: 'probe.ts', fragment: false, code: 'export const x: number = y;' };

describe('code blocks in README.md and docs/', () => {
  // One program for every block (and the probe): compiling src/ and the tRPC types once is most of the cost.
  const found = typeCheck([...compiled, probe]);

  it('finds the blocks, each title once', () => {
    expect(compiled.length).toBeGreaterThanOrEqual(5);
    expect(compiled.some((block) => block.doc === 'README.md' && block.title === 'server.ts')).toBe(true);
    const titles = compiled.flatMap((block) => (block.title ? [block.title] : []));
    expect(titles).toEqual([...new Set(titles)]);
  });

  it('keeps fragments few and short', () => {
    const fragments = snippets.filter((snippet) => snippet.fragment);
    for (const fragment of fragments) expect(fragment.code.split('\n').length, `${fragment.doc}:${fragment.line}`).toBeLessThanOrEqual(8);
    expect(fragments.length).toBeLessThanOrEqual(compiled.length);
  });

  it('type-checks every block that is not a fragment (strict)', () => {
    const problems = compiled.flatMap((block) => found.get(block) ?? []);
    expect(problems.join('\n')).toBe('');
  });

  it('reports an error in a block at its line in the document', () => {
    const [problem] = found.get(probe) ?? [];
    expect(problem).toMatch(/^README\.md:40:26 TS2304: Cannot find name 'y'/);
    expect(relative(root, fileOf(probe))).toBe('test/docs/.snippets/probe.ts');
  });
});

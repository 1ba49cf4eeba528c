import { readFileSync } from 'node:fs';

/** One fenced TypeScript block of a Markdown document. */
export interface Snippet {
  /** The document, relative to the repository root (`README.md`, `docs/client.md`). */
  doc: string;
  /** Line of the block's first code line in the document (1-based). */
  line: number;
  /** The info string's words after the language: `fragment`, `title="server.ts"`. */
  meta: string;
  /** `title="server.ts"`: the file name other blocks import it by (`./server.js`). */
  title: string | undefined;
  /** Marked ```ts fragment: a piece of a larger file, shown for its shape and not compiled. */
  fragment: boolean;
  code: string;
}

const FENCE = /^```(ts|tsx|typescript)(?:[ \t]+(.*))?$/;

/** The TypeScript blocks (```ts, ```tsx, ```typescript) of one Markdown document. */
export const extractSnippets = (root: string, doc: string): Snippet[] => {
  const lines = readFileSync(`${root}/${doc}`, 'utf8').split('\n');
  const snippets: Snippet[] = [];
  for (let index = 0; index < lines.length; index++) {
    const open = FENCE.exec(lines[index] ?? '');
    if (!open) continue;
    const end = lines.findIndex((text, at) => at > index && text.startsWith('```'));
    if (end === -1) throw new Error(`${doc}:${index + 1}: code block never closed`);
    const meta = (open[2] ?? '').trim();
    snippets.push({
      doc,
      line: index + 2,
      meta,
      title: /title="([^"]+)"/.exec(meta)?.[1],
      fragment: /(^|\s)fragment(\s|$)/.test(meta),
      code: lines.slice(index + 1, end).join('\n'),
    });
    index = end;
  }
  return snippets;
};

import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Where the browser test's Chromium comes from, for its messages. */
export interface FoundChromium {
  executablePath: string;
  source: 'CHROMIUM_PATH' | 'system' | '@sparticuz/chromium';
}

/** Names a system Chromium goes by (Debian's `chromium`, Ubuntu's and Fedora's `chromium-browser`). */
const SYSTEM_NAMES = ['chromium', 'chromium-browser'];

const onPath = (name: string): string | undefined =>
  (process.env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, name))
    .find((candidate) => existsSync(candidate));

/**
 * The Chromium the browser test drives: `CHROMIUM_PATH` when set (and then it must exist), else a system
 * Chromium on PATH, else the build `@sparticuz/chromium` ships inside its npm package (unpacked to the temp
 * directory on first use, about 2 s), so `npm install && npm test` needs no browser installed by hand.
 */
export const findChromium = async (): Promise<FoundChromium> => {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CHROMIUM_PATH is set to ${fromEnv}, which does not exist.`);
    return { executablePath: fromEnv, source: 'CHROMIUM_PATH' };
  }
  const system = SYSTEM_NAMES.map(onPath).find((path) => path !== undefined);
  if (system) return { executablePath: system, source: 'system' };
  // Imported only when needed: the module reads the environment when loaded.
  const { default: packaged } = await import('@sparticuz/chromium');
  return { executablePath: await packaged.executablePath(), source: '@sparticuz/chromium' };
};

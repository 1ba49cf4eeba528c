import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, cpSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { claimLua, completeLua, peekLua, releaseLua, renewLua } from '../../src/redis/luaScripts';

const root = join(import.meta.dirname, '../..');

describe('src/redis/luaScripts.ts', () => {
  it('is up to date with src/redis/lua/*.lua (run `npm run gen:lua`)', () => {
    const check = spawnSync(process.execPath, [join(root, 'scripts/genLua.mjs'), '--check'], { encoding: 'utf8' });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('--check fails once a .lua file changes without regenerating', () => {
    const copy = mkdtempSync(join(tmpdir(), 'genlua-'));
    mkdirSync(join(copy, 'scripts'));
    cpSync(join(root, 'scripts/genLua.mjs'), join(copy, 'scripts/genLua.mjs'));
    cpSync(join(root, 'src/redis'), join(copy, 'src/redis'), { recursive: true });
    writeFileSync(join(copy, 'package.json'), readFileSync(join(root, 'package.json')));
    const claim = join(copy, 'src/redis/lua/claim.lua');
    writeFileSync(claim, `${readFileSync(claim, 'utf8')}\n-- changed\n`);
    const check = spawnSync(process.execPath, [join(copy, 'scripts/genLua.mjs'), '--check'], { encoding: 'utf8' });
    expect(check.status).toBe(1);
    execFileSync(process.execPath, [join(copy, 'scripts/genLua.mjs')]);
    expect(readFileSync(join(copy, 'src/redis/luaScripts.ts'), 'utf8')).toContain('-- changed');
  });

  it('inlines the shared record helpers and opens every script with its KEYS/ARGV/output header', () => {
    for (const lua of [claimLua, renewLua, completeLua, releaseLua, peekLua]) {
      expect(lua.startsWith('--[[')).toBe(true);
      expect(lua).toMatch(/KEYS\[1(\.\.n)?\]/);
      expect(lua).toContain('Output');
      expect(lua).toContain('local function loadRecord(key)');
      expect(lua).not.toMatch(/^-- @include/m);
    }
  });
});

/**
 * The README's commands as data, so tests can run what the README tells a
 * person to run and the two cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './repo.js';

/** The command lines of the first ```sh block under the heading `## TITLE` (comments and blank lines dropped). */
export function readmeCommands(title: string): string[] {
  const text = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const at = text.search(new RegExp(`^## ${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`, 'm'));
  if (at < 0) throw new Error(`README.md has no "## ${title}" section`);
  const section = text.slice(at).split(/^## /m)[1]!;
  const block = /^```sh\n([\s\S]*?)^```/m.exec(section);
  if (!block) throw new Error(`README.md's "## ${title}" section has no sh code block`);
  return block[1]!
    .split('\n')
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter(Boolean);
}

/** `a && b && c` → ["a", "b", "c"]. */
export const steps = (line: string): string[] => line.split('&&').map((s) => s.trim());

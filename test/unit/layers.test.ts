/**
 * Imports point down the layers only (README "Layout", docs/STYLE rule 12):
 * cli → server / userspace → control / device / netstack → protocol / io →
 * crypto → executable. Every relative import of src/ (static `from '…'` and
 * dynamic `import('…')`) that crosses into another top-level folder must
 * reach a folder of a lower layer; a folder missing from the table fails too,
 * so a new one has to be placed.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../support/repo.js';

const SRC = join(REPO_ROOT, 'src');

/** Higher imports lower; equal ranks (siblings) do not import each other. */
const RANK: Record<string, number> = {
  executable: 0, // how the program runs: the addon loader, build info
  crypto: 1,
  protocol: 2,
  io: 2,
  device: 3,
  netstack: 3,
  control: 3,
  server: 4,
  userspace: 4,
  cli: 5,
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The relative module specifiers of a file: `from '…'`, `import '…'` and `import('…')`. */
function relativeImports(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)(['"])(\.[^'"]*)\1/gm)) out.push(m[2]!);
  return out;
}

test('the import scanner sees static, side-effect and dynamic imports', () => {
  const text = `import { a } from '../x/a.js';\nimport '../y/b.js';\nconst c = await import("../z/c.js");\nexport { d } from './d.js';\nimport e from 'node:fs';\n`;
  assert.deepEqual(relativeImports(text), ['../x/a.js', '../y/b.js', '../z/c.js', './d.js']);
});

test('every import across src/ folders points down the layers', () => {
  const files = sources(SRC);
  assert.ok(files.length > 100, `found ${files.length} source files`);
  const wrong: string[] = [];
  let crossing = 0;
  for (const file of files) {
    const from = relative(SRC, file).split('/')[0]!;
    if (!(from in RANK)) wrong.push(`${relative(REPO_ROOT, file)}: src/${from} has no place in the layers`);
    for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
      const to = relative(SRC, resolve(dirname(file), spec)).split('/')[0]!;
      if (to === from) continue;
      crossing++;
      if (!(to in RANK) || !(from in RANK) || RANK[to]! >= RANK[from]!) wrong.push(`${relative(REPO_ROOT, file)} imports ${spec} (${from} → ${to})`);
    }
  }
  assert.ok(crossing > 50, `found ${crossing} imports across folders`);
  assert.deepEqual(wrong, []);
});

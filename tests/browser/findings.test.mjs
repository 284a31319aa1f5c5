// Every finding code the engine can emit has a plain-words explanation on the page (www/app.js,
// FINDINGS). Without one the page still shows the engine's message, under the bare code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lib.mjs';

function rustFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return rustFiles(p);
    return e.name.endsWith('.rs') ? [p] : [];
  });
}

test('every finding code is explained on the page', () => {
  const codes = new Set();
  for (const file of rustFiles(join(ROOT, 'crate', 'src'))) {
    const src = readFileSync(file, 'utf8');
    // Finding::new("code", ...) and the drivers' helpers: .finding("code", ...)
    for (const m of src.matchAll(/(?:Finding::new|\.finding)\(\s*"([a-z0-9-]+)"\s*,/g)) codes.add(m[1]);
  }
  assert.ok(codes.size >= 10, `found only ${codes.size} codes: the pattern no longer matches the sources`);
  const app = readFileSync(join(ROOT, 'www', 'app.js'), 'utf8');
  const block = app.slice(app.indexOf('const FINDINGS = {'), app.indexOf('};', app.indexOf('const FINDINGS = {')));
  const explained = new Set([...block.matchAll(/^\s+'([a-z0-9-]+)':|^\s+([a-z]+):/gm)].map((m) => m[1] || m[2]));
  const missing = [...codes].filter((c) => !explained.has(c)).sort();
  assert.deepEqual(missing, [], 'add a title and a plain explanation for these codes to FINDINGS in www/app.js');
});

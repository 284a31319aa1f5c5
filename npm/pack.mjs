// Builds the npm package from www/ (the page's own modules: one copy of the JS API) into
// target/npm/vmdisk-VERSION.tgz and prints its path as the last line. Run by `./dev pack`, which
// builds www/pkg first. The version is the crate's (crate/Cargo.toml); npm/package.json holds the
// rest of the metadata, and its `files` list is checked to be closed: every module a packed file
// imports, or finds by `new URL(..., import.meta.url)`, is packed too.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WWW = join(ROOT, 'www');
const OUT = join(ROOT, 'target', 'npm');
const STAGE = join(OUT, 'package');

function fail(message) {
  console.error(`pack: ${message}`);
  process.exit(1);
}

/** The crate's version: the `version` line of crate/Cargo.toml's [package] table. */
function crateVersion() {
  const toml = readFileSync(join(ROOT, 'crate', 'Cargo.toml'), 'utf8');
  const table = /^\[package\]\n([\s\S]*?)(?=^\[|(?![\s\S]))/m.exec(toml)?.[1] ?? '';
  const version = /^version\s*=\s*"([^"]+)"/m.exec(table)?.[1];
  if (!version) fail('no version in crate/Cargo.toml [package]');
  return version;
}

/** The files a module names relatively: static imports, re-exports, new URL(..., import.meta.url). */
function references(file) {
  const text = readFileSync(file, 'utf8');
  const found = [];
  const patterns = [
    /\b(?:import|export)\b[^'"`;]*?\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]/g,
    /\bimport\s*['"](\.{1,2}\/[^'"]+)['"]/g,
    /\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g,
    /\bnew URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) found.push(normalize(join(dirname(file), m[1])));
  return found;
}

const template = JSON.parse(readFileSync(join(ROOT, 'npm', 'package.json'), 'utf8'));
const manifest = { ...template, version: crateVersion() };
const files = manifest.files;

for (const f of files) {
  if (!existsSync(join(WWW, f))) fail(`www/${f} is missing${f.startsWith('pkg/') ? ' (run ./dev build)' : ''}`);
}
const packed = new Set(files.map((f) => join(WWW, f)));
for (const f of files.filter((f) => /\.(js|d\.ts)$/.test(f))) {
  for (const ref of references(join(WWW, f))) {
    const target = existsSync(ref) || !ref.endsWith('.js') ? ref : ref.replace(/\.js$/, '.d.ts');
    if (!packed.has(ref) && !packed.has(target)) fail(`www/${f} needs ${relative(WWW, ref)}, which npm/package.json "files" leaves out`);
  }
}
for (const [entry, spec] of Object.entries(manifest.exports)) {
  for (const path of typeof spec === 'string' ? [spec] : Object.values(spec)) {
    const rel = normalize(path);
    if (rel !== 'package.json' && !files.includes(rel)) fail(`exports["${entry}"] names ${path}, which "files" leaves out`);
  }
}

rmSync(STAGE, { recursive: true, force: true });
for (const f of files) {
  mkdirSync(dirname(join(STAGE, f)), { recursive: true });
  copyFileSync(join(WWW, f), join(STAGE, f));
}
copyFileSync(join(ROOT, 'npm', 'README.md'), join(STAGE, 'README.md'));
writeFileSync(join(STAGE, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);

const [info] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', OUT], {
  cwd: STAGE, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
}));
console.error(`pack: ${info.entryCount} files, ${info.size} bytes packed (${info.unpackedSize} unpacked)`);
console.log(join(OUT, info.filename));

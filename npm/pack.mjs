// Builds the npm package from www/ (the page's own modules: one copy of the JS API) into
// target/npm/vmdisk-VERSION.tgz and prints its path as the last line. Run by `./dev pack`, which
// builds www/pkg first. The version is the crate's (crate/Cargo.toml); npm/package.json holds the
// rest of the metadata, and its `files` list is checked to be closed: every module a packed file
// imports, or finds by `new URL(..., import.meta.url)`, is packed too. Two files are not from
// www/: the `vmdisk/inline` entry (npm/inline.js) and its assets (inline-assets.js), made here
// with esbuild: each worker bundled into a string, and the wasm in base64.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WWW = join(ROOT, 'www');
const OUT = join(ROOT, 'target', 'npm');
const STAGE = join(OUT, 'package');
const FROM_NPM = new Set(['inline.js']);
const GENERATED = { 'inline-assets.js': inlineAssets };

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

/** Where a packed file comes from: www/, or npm/ for the package's own entries. */
const source = (f) => join(FROM_NPM.has(f) ? join(ROOT, 'npm') : WWW, f);

/**
 * vmdisk/inline's assets: worker.js and compress-worker.js, each bundled with what it imports
 * (the wasm-bindgen glue) into one ES module as a string, and the wasm as base64.
 */
async function inlineAssets() {
  const { build } = await import('esbuild');
  const bundle = async (entry) => {
    const result = await build({ entryPoints: [join(WWW, entry)], bundle: true, format: 'esm', minify: true, write: false, logLevel: 'warning' });
    return result.outputFiles[0].text;
  };
  const wasm = readFileSync(join(WWW, 'pkg', 'vmdisk_bg.wasm')).toString('base64');
  return [
    '// Made by npm/pack.mjs for vmdisk/inline (inline.js): www/worker.js and www/compress-worker.js',
    '// bundled by esbuild, and www/pkg/vmdisk_bg.wasm in base64.',
    `export const WORKER = ${JSON.stringify(await bundle('worker.js'))};`,
    `export const COMPRESS_WORKER = ${JSON.stringify(await bundle('compress-worker.js'))};`,
    `export const WASM_BASE64 = '${wasm}';`,
    '',
  ].join('\n');
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

for (const f of files.filter((f) => !GENERATED[f])) {
  if (!existsSync(source(f))) fail(`${relative(ROOT, source(f))} is missing${f.startsWith('pkg/') ? ' (run ./dev build)' : ''}`);
}
for (const f of Object.keys(GENERATED)) if (!files.includes(f)) fail(`npm/package.json "files" leaves out ${f}`);
// Checked as staged (where each file's neighbours are the package's); the generated bundles
// import nothing.
rmSync(STAGE, { recursive: true, force: true });
for (const f of files) {
  mkdirSync(dirname(join(STAGE, f)), { recursive: true });
  if (GENERATED[f]) writeFileSync(join(STAGE, f), await GENERATED[f]());
  else copyFileSync(source(f), join(STAGE, f));
}
const packed = new Set(files.map((f) => join(STAGE, f)));
for (const f of files.filter((f) => /\.(js|d\.ts)$/.test(f) && !GENERATED[f])) {
  for (const ref of references(join(STAGE, f))) {
    const target = existsSync(ref) || !ref.endsWith('.js') ? ref : ref.replace(/\.js$/, '.d.ts');
    if (!packed.has(ref) && !packed.has(target)) fail(`${relative(ROOT, source(f))} needs ${relative(STAGE, ref)}, which npm/package.json "files" leaves out`);
  }
}
for (const [entry, spec] of Object.entries(manifest.exports)) {
  for (const path of typeof spec === 'string' ? [spec] : Object.values(spec)) {
    const rel = normalize(path);
    if (rel !== 'package.json' && !files.includes(rel)) fail(`exports["${entry}"] names ${path}, which "files" leaves out`);
  }
}

copyFileSync(join(ROOT, 'npm', 'README.md'), join(STAGE, 'README.md'));
writeFileSync(join(STAGE, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);

const [info] = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', OUT], {
  cwd: STAGE, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
}));
console.error(`pack: ${info.entryCount} files, ${info.size} bytes packed (${info.unpackedSize} unpacked)`);
console.log(join(OUT, info.filename));

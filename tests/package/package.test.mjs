// The npm package as a dashboard gets it: the tarball (./dev pack; VMDISK_TGZ names it) installed
// into the app under tests/package/app, built with Vite, built with webpack 5 (neither configured
// for the package's workers and wasm), built with esbuild from `vmdisk/inline` (workers and wasm
// inside the bundle) and, separately, served unbundled from node_modules; each driven in headless
// Chromium by the same checks. Also: an offline install into an empty app, the types under tsc,
// and examples/upload-form.html. Run: node --test tests/package/
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiB, ROOT, check, compare, launch, makeRaw, qemuImg } from '../browser/lib.mjs';
import { serve } from '../browser/server.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const npm = (cwd, ...args) => execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8' });

/** The names www/vmdisk.js exports: the package must export every one (the page's API, one copy). */
const API = [...readFileSync(join(ROOT, 'www', 'vmdisk.js'), 'utf8').matchAll(/^export (?:async )?(?:function|const|let|class) (\w+)/gm)].map((m) => m[1]);

const APP = join(HERE, 'app');
const bin = (name) => join(HERE, 'node_modules', '.bin', name);

/**
 * Each bundler builds the app with no configuration for the package: returns the output
 * directory, and for webpack its stats (written to `scratch`).
 */
const BUNDLERS = {
  vite() {
    rmSync(join(APP, 'dist'), { recursive: true, force: true });
    execFileSync(bin('vite'), ['build', '--logLevel', 'warn'], { cwd: APP, stdio: 'inherit' });
    return { out: join(APP, 'dist') };
  },
  webpack(scratch) {
    // Only entry, output and mode (app/webpack.config.mjs); webpack writes no HTML, so the
    // app's index.html goes beside the bundle (its module script names ./main.js, the bundle).
    const json = join(scratch, 'webpack-stats.json');
    execFileSync(bin('webpack'), ['--config', join(APP, 'webpack.config.mjs'), '--json', json], { cwd: APP, stdio: 'ignore' });
    copyFileSync(join(APP, 'index.html'), join(APP, 'dist-webpack', 'index.html'));
    return { out: join(APP, 'dist-webpack'), stats: JSON.parse(readFileSync(json, 'utf8')) };
  },
  esbuild() {
    // The command line an esbuild user types, nothing more (esbuild/main.js imports vmdisk/inline);
    // like webpack's, the bundle gets the app's index.html beside it.
    const out = join(APP, 'dist-esbuild');
    rmSync(out, { recursive: true, force: true });
    const run = spawnSync(bin('esbuild'), ['esbuild/main.js', '--bundle', '--format=esm', '--outdir=dist-esbuild'], { cwd: APP, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    copyFileSync(join(APP, 'index.html'), join(out, 'index.html'));
    return { out, log: run.stderr };
  },
};

/** Where each build of the app is served: the bundles, and the package as installed. */
const APPS = {
  vite: () => servers.vite.url,
  webpack: () => servers.webpack.url,
  esbuild: () => servers.esbuild.url,
  unbundled: () => `${servers.unbundled.url}app/unbundled.html`,
};

let tgz;
let dir;
let browser;
const servers = {};
const builds = {}; // name -> { out, seconds, stats? }

before(async () => {
  tgz = process.env.VMDISK_TGZ || execFileSync('node', [join(ROOT, 'npm', 'pack.mjs')], { encoding: 'utf8' }).trim().split('\n').pop();
  // vite, webpack and typescript, from the lockfile; ./dev's setup does this, a warm run skips it.
  const stamp = join(HERE, 'node_modules', '.package-lock.json');
  if (!existsSync(stamp) || statSync(join(HERE, 'package-lock.json')).mtimeMs > statSync(stamp).mtimeMs) npm(HERE, 'ci');
  npm(HERE, 'install', '--no-save', '--offline', tgz);
  dir = mkdtempSync(join(tmpdir(), 'vmdisk-package-'));
  // Each bundle is served alone (its output directory is the server's root): a worker or the
  // wasm it did not emit is a 404, not a file found in node_modules.
  for (const [name, build] of Object.entries(BUNDLERS)) {
    const t = performance.now();
    builds[name] = build(dir);
    builds[name].seconds = (performance.now() - t) / 1000;
    servers[name] = await serve(builds[name].out);
  }
  servers.unbundled = await serve(HERE); // /app/unbundled.html, /node_modules/vmdisk/...
  servers.repo = await serve(ROOT); // /examples/upload-form.html, /www/...
  browser = await launch();
});

after(async () => {
  await browser?.close();
  for (const s of Object.values(servers)) await s.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * A fresh context on `url`: every request that leaves the server's origin is recorded in
 * `page.outside` and aborted; `page.errors` collects uncaught page errors.
 */
async function open(url, ready) {
  const context = await browser.newContext({ acceptDownloads: true });
  const origin = new URL(url).origin;
  const page = await context.newPage();
  page.outside = [];
  page.errors = [];
  page.workers = [];
  page.on('worker', (w) => page.workers.push(w.url()));
  await context.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(`${origin}/`) || u.startsWith('blob:') || u.startsWith('data:')) return route.continue();
    page.outside.push(u);
    return route.abort();
  });
  context.on('request', (req) => {
    const u = req.url();
    if (!(u.startsWith(`${origin}/`) || u.startsWith('blob:') || u.startsWith('data:')) && !page.outside.includes(u)) page.outside.push(u);
  });
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector(ready, { state: 'attached', timeout: 30_000 });
  return page;
}

async function finish(page) {
  assert.deepEqual(page.outside, [], 'requests left the page\'s origin');
  assert.deepEqual(page.errors, [], 'uncaught errors in the page');
  await page.context().close();
}

function images() {
  const raw = makeRaw(join(dir, 'src.raw'), 32 * MiB);
  const qcow2 = join(dir, 'disk.qcow2');
  const vmdk = join(dir, 'disk.vmdk');
  if (!existsSync(qcow2)) qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, qcow2);
  if (!existsSync(vmdk)) qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', raw, vmdk);
  return { raw, qcow2, vmdk };
}

/** An overlay whose backing file is not picked: unsafe (`backing-file`, critical). */
function unsafeOverlay() {
  const base = join(dir, 'absent-base.qcow2');
  const overlay = join(dir, 'overlay.qcow2');
  if (!existsSync(overlay)) {
    qemuImg('create', '-q', '-f', 'qcow2', base, String(16 * MiB));
    qemuImg('create', '-q', '-f', 'qcow2', '-b', 'absent-base.qcow2', '-F', 'qcow2', overlay);
  }
  return overlay;
}

/** The element's state once it settles, and its shadow DOM's data. */
async function settled(page, selector = 'vmdisk-check') {
  await page.waitForFunction((s) => ['safe', 'unsafe', 'failed'].includes(document.querySelector(s)?.getAttribute('state')), selector, { timeout: 60_000 });
  return page.evaluate((s) => {
    const host = document.querySelector(s);
    const root = host.shadowRoot;
    const verdict = root.querySelector('[part~=verdict]');
    const data = (sel) => Object.fromEntries([...root.querySelectorAll(sel)].map((d) => [d.dataset.key, d.dataset.value]));
    return {
      state: host.getAttribute('state'),
      verdict: verdict?.textContent ?? null,
      verdictColor: verdict && getComputedStyle(verdict).color,
      verdictSize: verdict && getComputedStyle(verdict).fontSize,
      facts: data('[part~=facts] dd'),
      glance: data('[part~=glance] dd'),
      clouds: [...root.querySelectorAll('[part~=cloud]')].map((li) => ({ target: li.dataset.target, accepted: li.dataset.accepted, reasons: [...li.querySelectorAll('[part~=reason]')].map((r) => r.dataset.code) })),
      findings: [...root.querySelectorAll('[part~=finding]')].map((li) => ({ code: li.dataset.code, severity: li.dataset.severity, text: li.textContent })),
    };
  }, selector);
}

test('the tarball installs offline into an empty app, with the metadata and files npm users expect', () => {
  const app = mkdtempSync(join(tmpdir(), 'vmdisk-offline-'));
  try {
    writeFileSync(join(app, 'package.json'), '{ "name": "empty-app", "private": true }\n');
    npm(app, 'install', '--offline', tgz);
    const pkgDir = join(app, 'node_modules', 'vmdisk');
    const meta = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
    const crate = /^\[package\][\s\S]*?^version\s*=\s*"([^"]+)"/m.exec(readFileSync(join(ROOT, 'crate', 'Cargo.toml'), 'utf8'))[1];
    assert.equal(meta.name, 'vmdisk');
    assert.equal(meta.version, crate, 'the version is the crate\'s');
    assert.equal(meta.license, 'MIT OR Apache-2.0');
    assert.equal(meta.type, 'module');
    assert.equal(meta.types, './vmdisk.d.ts');
    assert.deepEqual(Object.keys(meta.exports).sort(), ['.', './element', './inline', './package.json']);
    assert.equal(meta.exports['./inline'].types, meta.exports['.'].types, 'vmdisk/inline has the types of vmdisk');
    for (const spec of [meta.exports['.'], meta.exports['./element'], meta.exports['./inline']]) {
      for (const f of Object.values(spec)) assert.ok(existsSync(join(pkgDir, f)), `exports names ${f}, not in the package`);
    }
    assert.deepEqual(JSON.parse(JSON.stringify(meta.dependencies ?? {})), {}, 'the package has no dependencies (offline install)');
    // The page's modules, byte for byte: one copy of the API.
    for (const f of ['vmdisk.js', 'worker-maker.js', 'worker.js', 'compress-worker.js', 'vmdisk-check.js', 'vmdisk.d.ts', 'pkg/vmdisk_bg.wasm']) {
      assert.ok(readFileSync(join(pkgDir, f)).equals(readFileSync(join(ROOT, 'www', f))), `${f} differs from www/${f}`);
    }
    assert.ok(readFileSync(join(pkgDir, 'inline.js')).equals(readFileSync(join(ROOT, 'npm', 'inline.js'))), 'inline.js differs from npm/inline.js');
    const js = readdirSync(pkgDir, { recursive: true }).filter((f) => f.endsWith('.js'));
    for (const f of js) assert.doesNotMatch(readFileSync(join(pkgDir, f), 'utf8'), /SharedArrayBuffer|crossOriginIsolated/, `${f} needs cross-origin isolation`);
    // Every export has its declaration.
    const types = readFileSync(join(pkgDir, 'vmdisk.d.ts'), 'utf8');
    for (const name of API) assert.match(types, new RegExp(`export (declare )?function ${name}\\b`), `vmdisk.d.ts declares no ${name}()`);
    assert.ok(API.includes('inspect') && API.includes('convert') && API.includes('hash') && API.includes('release') && API.includes('map'));
  } finally {
    rmSync(app, { recursive: true, force: true });
  }
});

test('types: tsc --noEmit over a TypeScript consumer of the package', () => {
  execFileSync(join(HERE, 'node_modules', '.bin', 'tsc'), ['--noEmit', '-p', join(HERE, 'types')], { encoding: 'utf8' });
});

test('webpack: the build needs no rule for the package: no error, the wasm emitted once, only size hints', () => {
  const { errors, warnings, assets } = builds.webpack.stats;
  assert.deepEqual(errors.map((e) => e.message), []);
  // The 2.7 MiB wasm is past webpack's 244 KiB performance hint; any other warning is news.
  assert.deepEqual(warnings.map((w) => w.message).filter((m) => !/^(asset|entrypoint) size limit:/.test(m)), []);
  const wasm = assets.filter((a) => a.name.endsWith('.wasm'));
  assert.deepEqual(wasm.map((a) => a.info.sourceFilename), ['../node_modules/vmdisk/pkg/vmdisk_bg.wasm']);
  assert.equal(wasm[0].size, statSync(join(HERE, 'node_modules', 'vmdisk', 'pkg', 'vmdisk_bg.wasm')).size);
});

test('esbuild: one bundle, no warning, the workers and wasm inside it (vmdisk/inline)', (t) => {
  const { out, log } = builds.esbuild;
  assert.deepEqual(readdirSync(out).sort(), ['index.html', 'main.js'], 'esbuild emitted only the bundle');
  assert.doesNotMatch(log, /warning|error/i);
  const inline = join(HERE, 'node_modules', 'vmdisk', 'inline-assets.js');
  const wasm = statSync(join(HERE, 'node_modules', 'vmdisk', 'pkg', 'vmdisk_bg.wasm')).size;
  const bundle = statSync(join(out, 'main.js')).size;
  t.diagnostic(`tarball ${statSync(tgz).size} B, wasm ${wasm} B, inline-assets.js ${statSync(inline).size} B, esbuild bundle ${bundle} B`);
  // The wasm travels as base64 (4/3 of it) in the bundle.
  assert.ok(bundle > (wasm * 4) / 3, 'the bundle is smaller than the wasm in base64: it cannot carry it');
});

for (const [mode, url] of Object.entries(APPS)) {
  test(`${mode}: inspect a qcow2 and a VMDK, convert the VMDK to zstd qcow2, no request leaves the origin`, async (t) => {
    if (builds[mode]) t.diagnostic(`${mode} build: ${builds[mode].seconds.toFixed(2)} s`);
    const { qcow2, vmdk } = images();
    const page = await open(url(), 'body[data-ready]');
    const exported = await page.evaluate(() => Object.keys(window.app.vmdisk));
    for (const name of API) assert.ok(exported.includes(name), `the package does not export ${name}`);
    assert.equal(await page.evaluate(() => self.crossOriginIsolated), false, 'the page runs without cross-origin isolation');

    await page.setInputFiles('#other', [qcow2]);
    const q = await page.evaluate(() => window.app.vmdisk.inspect(document.getElementById('other').files));
    const info = JSON.parse(qemuImg('info', '--output=json', qcow2));
    assert.equal(q.format, 'qcow2');
    assert.equal(q['virtual-size'], info['virtual-size']);
    assert.equal(q.safety.safe, true);
    assert.equal(q.glance.disk_format, 'qcow2');

    await page.setInputFiles('#other', [vmdk]);
    const v = await page.evaluate(() => window.app.vmdisk.inspect(document.getElementById('other').files));
    assert.equal(v.format, 'vmdk');
    assert.equal(v['virtual-size'], 32 * MiB);
    assert.equal(v.convertible, true);

    // zstd: the engine worker hands batches to compression sub-workers (a worker in a worker).
    const [download, result] = await Promise.all([
      page.waitForEvent('download', { timeout: 120_000 }),
      page.evaluate(() => window.app.convertAndDownload('other', { format: 'qcow2', compression: 'zstd' }, 'out.qcow2')),
    ]);
    assert.equal(result.name, 'disk.qcow2');
    const out = join(dir, `${mode}-out.qcow2`);
    await download.saveAs(out);
    assert.equal(compare(vmdk, 'vmdk', out, 'qcow2').status, 0, 'the conversion differs from the VMDK');
    const c = check(out);
    assert.equal(c.status, 0, c.stderr);
    assert.equal(JSON.parse(qemuImg('info', '--output=json', out))['format-specific'].data['compression-type'], 'zstd');
    // The engine worker (vmdisk/inline's from a Blob URL).
    assert.ok(page.workers.length >= 1, 'no worker started');
    if (mode === 'esbuild') assert.ok(page.workers.every((u) => u.startsWith('blob:')), `workers: ${page.workers.join(', ')}`);
    await finish(page);
  });

  test(`${mode}: <vmdisk-check> renders the verdict, styled from outside, and dispatches vmdisk-report`, async () => {
    const { qcow2 } = images();
    const page = await open(url(), 'body[data-ready]');
    assert.equal(await page.evaluate(() => window.app.defined), true);
    assert.equal(await page.getAttribute('vmdisk-check', 'state'), 'idle');
    await page.setInputFiles('#disk', [qcow2]);
    const shown = await settled(page);
    assert.equal(shown.state, 'safe');
    assert.match(shown.verdict, /Safe/);
    assert.equal(shown.verdictSize, '20px', '::part(verdict) from the page styles it');
    assert.deepEqual(shown.facts, { format: 'qcow2', 'virtual-size': String(32 * MiB), 'actual-size': String(statSync(qcow2).size) });
    assert.deepEqual(shown.glance, { disk_format: 'qcow2', container_format: 'bare', size: String(statSync(qcow2).size), virtual_size: String(32 * MiB), min_disk: '1' });
    const events = await page.evaluate(() => window.app.events);
    assert.equal(events.length, 1);
    assert.equal(events[0].type, 'vmdisk-report');
    assert.equal(events[0].target, 'vmdisk-check');
    const report = events[0].report;
    assert.equal(report.format, 'qcow2');
    assert.deepEqual(events[0].files, ['disk.qcow2']);
    // One tile per verdict of the report, with the refusals' reason codes.
    assert.deepEqual(shown.clouds, report.clouds.map((v) => ({ target: v.target, accepted: String(v.accepted), reasons: v.accepted ? [] : v.reasons.map((r) => r.code) })));
    assert.deepEqual(shown.clouds.map((c) => c.target).sort(), ['aws', 'azure', 'gce', 'openstack']);

    // The `files` property, and an unsafe image: the reason is shown, in the page's colour.
    await page.setInputFiles('#other', [unsafeOverlay()]);
    await page.evaluate(() => { window.app.check.files = document.getElementById('other').files; });
    const bad = await settled(page);
    assert.equal(bad.state, 'unsafe');
    assert.match(bad.verdict, /^Unsafe: .*backing file/i);
    assert.equal(bad.verdictColor, 'rgb(170, 0, 0)', '--vmdisk-bad from the page colours it');
    assert.ok(bad.findings.some((f) => f.code === 'backing-file' && f.severity === 'critical'));
    const last = (await page.evaluate(() => window.app.events)).at(-1);
    assert.equal(last.type, 'vmdisk-report');
    assert.equal(last.report.safety.safe, false);

    // An empty file is no disk image: vmdisk-error, and the reason shown.
    const empty = join(dir, 'empty.img');
    writeFileSync(empty, '');
    await page.setInputFiles('#other', [empty]);
    await page.evaluate(() => { window.app.check.files = document.getElementById('other').files; });
    const failed = await settled(page);
    assert.equal(failed.state, 'failed');
    const err = (await page.evaluate(() => window.app.events)).at(-1);
    assert.equal(err.type, 'vmdisk-error');
    assert.equal(err.error.kind, 'not-an-image');
    assert.deepEqual(err.files, ['empty.img']);
    assert.match(await page.evaluate(() => window.app.check.shadowRoot.querySelector('[part~=error]').textContent), /^Cannot be read: .*empty\.img is empty/);

    await page.evaluate(() => { window.app.check.files = []; });
    assert.equal(await page.getAttribute('vmdisk-check', 'state'), 'idle');
    await finish(page);
  });
}

test('examples/upload-form.html refuses an unsafe image with the reason and pre-fills a safe one', async () => {
  const { qcow2 } = images();
  const page = await open(`${servers.repo.url}examples/upload-form.html`, 'vmdisk-check');
  await page.setInputFiles('#disk', [unsafeOverlay()]);
  assert.equal((await settled(page)).state, 'unsafe');
  await page.waitForSelector('#refusal:not([hidden])');
  assert.match(await page.textContent('#refusal'), /will not be uploaded: .*backing file/i);
  assert.equal(await page.isDisabled('#send'), true);

  await page.setInputFiles('#disk', [qcow2]);
  assert.equal((await settled(page)).state, 'safe');
  await page.waitForSelector('#send:not([disabled])');
  assert.equal(await page.isHidden('#refusal'), true);
  assert.equal(await page.inputValue('#disk_format'), 'qcow2');
  assert.equal(await page.inputValue('#container_format'), 'bare');
  assert.equal(await page.inputValue('#min_disk'), '1');
  await page.click('#send');
  assert.match(await page.textContent('#sent'), /Would upload disk\.qcow2 as disk_format=qcow2 container_format=bare min_disk=1/);
  await finish(page);
});

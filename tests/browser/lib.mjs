// Shared pieces of the browser tests: Debian's Chromium driven by playwright-core, the page served
// from www/ on 127.0.0.1, disk images made by qemu-img in a temporary directory.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve } from './server.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WWW = join(ROOT, 'www');
export const MiB = 1 << 20;

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--headless=new', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];

export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** Everything one test file needs: a server, a browser, a scratch directory. */
export async function setup() {
  const server = await serve(WWW);
  const browser = await launch();
  const dir = mkdtempSync(join(tmpdir(), 'vmdisk-browser-'));
  return {
    server,
    browser,
    dir,
    path: (name) => join(dir, name),
    async close() {
      await browser.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A fresh context (own storage, so OPFS starts empty) with the page loaded and the engine ready.
 * `page.outside` collects every request that left 127.0.0.1; `page.errors` every uncaught page error.
 */
export async function openPage(env, { viewport = { width: 1100, height: 900 } } = {}) {
  const context = await env.browser.newContext({ acceptDownloads: true, viewport });
  const page = await context.newPage();
  const origin = new URL(env.server.url).origin;
  page.outside = [];
  page.errors = [];
  context.on('request', (req) => {
    const url = req.url();
    if (!(url.startsWith(origin + '/') || url.startsWith('blob:') || url.startsWith('data:'))) page.outside.push(url);
  });
  page.on('pageerror', (e) => page.errors.push(e.message));
  await page.goto(env.server.url);
  await page.waitForFunction(() => window.vmdisk && typeof window.vmdisk.inspect === 'function', null, { timeout: 30_000 });
  return page;
}

/** Pick files on the page and wait for the report (or, with { error: true }, for the error). */
export async function pick(page, files, { error = false } = {}) {
  await page.setInputFiles('#files', files);
  if (error) {
    await page.waitForSelector('#error:not([hidden])', { timeout: 60_000 });
    return page.textContent('#error');
  }
  const json = await page.waitForSelector('#report[data-json]', { timeout: 60_000, state: 'attached' })
    .then((h) => h.getAttribute('data-json'));
  return JSON.parse(json);
}

/**
 * Convert from the page's controls and save the download into `out`. Returns the path and the
 * text the page showed when it finished.
 */
export async function convertOnPage(page, out, { format, compression = '' }) {
  await page.selectOption('#format', format);
  if (format === 'qcow2') await page.selectOption('#compression', compression);
  await page.click('#convert');
  await page.waitForSelector('#convert-box[data-state="done"], #convert-box[data-state="failed"]', { timeout: 300_000, state: 'attached' });
  const state = await page.getAttribute('#convert-box', 'data-state');
  if (state !== 'done') throw new Error(`conversion failed on the page: ${await page.textContent('#error')}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  await download.saveAs(out);
  return { path: out, suggested: download.suggestedFilename(), status: await page.textContent('#convert-status') };
}

/** Give the page files through a hidden input of the test's own, `#id`, replacing an older one. */
export async function pageFiles(page, paths, id) {
  await page.evaluate((id) => {
    document.getElementById(id)?.remove();
    const input = Object.assign(document.createElement('input'), { type: 'file', multiple: true, id, hidden: true });
    document.body.append(input);
  }, id);
  await page.setInputFiles(`#${id}`, paths);
}

/** Every entry name in the page's origin-private file system, recursively. */
export function opfsEntries(page) {
  return page.evaluate(async () => {
    const names = [];
    const walk = async (dir, prefix) => {
      for await (const [name, handle] of dir.entries()) {
        names.push(prefix + name);
        if (handle.kind === 'directory') await walk(handle, `${prefix}${name}/`);
      }
    };
    await walk(await navigator.storage.getDirectory(), '');
    return names;
  });
}

export function qemuImg(...args) {
  return execFileSync('qemu-img', args, { encoding: 'utf8' });
}

export function qemuIo(file, fmt, ...cmds) {
  execFileSync('qemu-io', ['-f', fmt, ...cmds.flatMap((c) => ['-c', c]), file], { stdio: 'ignore' });
}

/** `qemu-img compare` exit status and output (0: identical guest content). */
export function compare(a, aFmt, b, bFmt) {
  const p = spawnSync('qemu-img', ['compare', '-f', aFmt, '-F', bFmt, a, b], { encoding: 'utf8' });
  return { status: p.status, output: (p.stdout + p.stderr).trim() };
}

export function check(file) {
  const p = spawnSync('qemu-img', ['check', '--output=json', '-f', 'qcow2', file], { encoding: 'utf8' });
  return { status: p.status, json: p.stdout ? JSON.parse(p.stdout) : null, stderr: p.stderr };
}

/** The newest native CLI build around (VMDISK_BIN, or target/{debug,release}), or null. */
function cliBin() {
  const bins = [process.env.VMDISK_BIN, join(ROOT, 'target', 'debug', 'vmdisk'), join(ROOT, 'target', 'release', 'vmdisk')]
    .filter((b) => b && existsSync(b))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return bins[0] ?? null;
}

/** The native CLI, when a build is around: `vmdisk info --json` for cross-checking the page. */
export function cliInfo(files) {
  const bin = cliBin();
  if (!bin) return null;
  return JSON.parse(execFileSync(bin, ['info', '--json', ...files], { encoding: 'utf8' }));
}

/** `vmdisk check --json` and its exit status, when a CLI build is around (null otherwise). */
export function cliCheck(files) {
  const bin = cliBin();
  if (!bin) return null;
  const p = spawnSync(bin, ['check', '--json', ...files], { encoding: 'utf8' });
  if (!p.stdout) throw new Error(`vmdisk check printed nothing (status ${p.status}): ${p.stderr}`);
  return { status: p.status, json: JSON.parse(p.stdout) };
}

/** A raw disk with a few MiB of recognisable data at several offsets (holes stay holes). */
export function makeRaw(path, size, { chunks = [[0, 1 * MiB], [5 * MiB, 3 * MiB], [size - 2 * MiB, 2 * MiB]], seed = 1 } = {}) {
  qemuImg('create', '-q', '-f', 'raw', path, String(size));
  for (const [i, [off, len]] of chunks.entries()) {
    // Half random bytes (incompressible), half a repeating pattern (compressible).
    const pattern = i % 2 ? `-P ${(seed * 37 + i) % 255 + 1} ` : '';
    if (pattern) qemuIo(path, 'raw', `write ${pattern}${off} ${len}`);
    else execFileSync('dd', ['if=/dev/urandom', `of=${path}`, 'bs=64K', `seek=${off / 65536}`, `count=${len / 65536}`, 'conv=notrunc', 'status=none']);
  }
  return path;
}

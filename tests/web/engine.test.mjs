// The engine's JS API (www/vmdisk.js) in headless Chromium, at sizes the wasm-bindgen tests do
// not reach: a multi-GiB sparse disk converted both ways with the worker's wasm memory bounded,
// compression spread over the sub-workers, results read back in the page, release(), errors.
// Uses the page tests' helpers (server, Chromium, qemu-img). Run: node --test tests/web/
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { chromium } from 'playwright-core';
import { join } from 'node:path';
import { CHROMIUM, CHROMIUM_ARGS, MiB, ROOT, makeRaw, opfsEntries, openPage, pageFiles as pickHidden, setup } from '../browser/lib.mjs';

const GiB = 1024 * MiB;
let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

/** Give the page files through an input of our own (`#engine-test-files`). */
const pageFiles = (page, paths) => pickHidden(page, paths, 'engine-test-files');

/** Run `fn(api, files, arg)` in the page with vmdisk.js imported and the picked files. */
function inPage(page, fn, arg) {
  return page.evaluate(async ([src, arg]) => {
    const api = await import('/vmdisk.js');
    const files = Array.from(document.getElementById('engine-test-files').files);
    // eslint-disable-next-line no-new-func
    return new Function('api', 'files', 'arg', `return (${src})(api, files, arg);`)(api, files, arg);
  }, [fn.toString(), arg]);
}

/** In-page helper source: do two Blobs hold the same bytes? (16 MiB at a time). */
const SAME = `async (a, b) => {
  if (a.size !== b.size) return 'sizes ' + a.size + ' and ' + b.size;
  for (let at = 0; at < a.size; at += 16 << 20) {
    const [x, y] = await Promise.all([a, b].map((f) => f.slice(at, at + (16 << 20)).arrayBuffer().then((v) => new Uint8Array(v))));
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return 'differ at ' + (at + i);
  }
  return 'same';
}`;

test('a 6 GiB sparse disk converts both ways with the worker under 256 MiB of wasm memory', async (t) => {
  const big = makeRaw(env.path('big.raw'), 6 * GiB, {
    chunks: [[0, 8 * MiB], [1 * GiB, 64 * MiB], [3 * GiB + 5 * MiB, 32 * MiB], [6 * GiB - 4 * MiB, 4 * MiB]],
  });
  // A persistent profile: a fresh context's storage quota (a few GiB) is too small for a 6 GiB
  // output, which OPFS counts by its length, holes included.
  const profile = mkdtempSync(join(tmpdir(), 'vmdisk-profile-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.after(async () => { await context.close(); rmSync(profile, { recursive: true, force: true }); });
  const page = await context.newPage();
  await page.goto(env.server.url);
  await pageFiles(page, [big]);
  const out = await inPage(page, async (api, files) => {
    const t0 = performance.now();
    let reports = 0;
    const q = await api.convert(files, { format: 'qcow2', onProgress: () => { reports++; } });
    const toQcow2 = (performance.now() - t0) / 1000;
    const report = await api.inspect([q.file]);
    const t1 = performance.now();
    const r = await api.convert([q.file], { format: 'raw' });
    const toRaw = (performance.now() - t1) / 1000;
    const mem = await api.memory();
    const out = {
      q: { name: q.name, size: q.size, format: q.format, fileName: q.file.name, wasm: q.wasmMemoryBytes, seconds: toQcow2 },
      r: { name: r.name, size: r.size, format: r.format, wasm: r.wasmMemoryBytes, seconds: toRaw },
      report: { format: report.format, virtual: report['virtual-size'] },
      reports,
      mem,
    };
    await api.release(q);
    await api.release(r);
    return out;
  });
  t.diagnostic(JSON.stringify(out));
  assert.equal(out.q.name, 'big.qcow2');
  assert.equal(out.q.fileName, 'big.qcow2');
  assert.equal(out.q.format, 'qcow2');
  assert.ok(out.q.size > 108 * MiB && out.q.size < 120 * MiB, `qcow2 size ${out.q.size}`);
  assert.deepEqual(out.report, { format: 'qcow2', virtual: 6 * GiB });
  assert.equal(out.r.name, 'big.raw');
  assert.equal(out.r.size, 6 * GiB);
  assert.ok(out.reports > 10, `${out.reports} progress reports`);
  for (const w of [out.q.wasm, out.r.wasm, out.mem.wasmMemoryBytes]) assert.ok(w < 256 * MiB, `wasm memory ${w}`);
  assert.deepEqual(await opfsEntries(page), [], 'release() left files');
});

test('compressed outputs use the sub-workers and read back to the same bytes', async (t) => {
  const src = makeRaw(env.path('medium.raw'), 256 * MiB, {
    chunks: [[0, 32 * MiB], [64 * MiB, 48 * MiB], [160 * MiB, 16 * MiB], [200 * MiB, 40 * MiB]],
  });
  const page = await openPage(env);
  await pageFiles(page, [src]);
  const out = await inPage(page, async (api, files, same) => {
    const compare = new Function(`return (${same})`)();
    const rows = [];
    let map = null;
    for (const compression of ['zlib', 'zstd']) {
      const t0 = performance.now();
      const q = await api.convert(files, { format: 'qcow2', compression });
      const seconds = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      const back = await api.convert([q.file], { format: 'raw' });
      const backSeconds = (performance.now() - t1) / 1000;
      rows.push({
        compression, size: q.size, seconds, backSeconds, workers: q.poolWorkers, pool: q.poolMemoryBytes, each: q.poolWorkerMemory,
        wasm: Math.max(q.wasmMemoryBytes, back.wasmMemoryBytes), same: await compare(files[0], back.file),
      });
      // map() of the compressed output: whole, and streamed in batches.
      const whole = await api.map([q.file]);
      let streamed = 0;
      let batches = 0;
      const count = await api.map([q.file], { onRows: (rows) => { batches++; streamed += rows.length; } });
      map = { whole: whole.length, streamed, count, batches };
      await api.release(q);
      await api.release(back);
    }
    return { rows, cores: navigator.hardwareConcurrency, map };
  }, SAME);
  t.diagnostic(JSON.stringify(out));
  for (const r of out.rows) {
    assert.equal(r.same, 'same', r.compression);
    assert.ok(r.size < 200 * MiB, `${r.compression}: ${r.size}`);
    assert.equal(r.workers, Math.max(1, out.cores) >= 2 ? out.cores : 0, `${r.compression}: sub-workers`);
    assert.ok(r.wasm < 256 * MiB && r.pool < 256 * MiB);
    assert.equal(r.each.length, r.workers, `${r.compression}: one memory figure a sub-worker`);
    for (const m of r.each) assert.ok(m > 0 && m < 256 * MiB, `${r.compression}: sub-worker memory ${m}`);
  }
  assert.ok(out.map.whole >= 4, `${out.map.whole} map rows`);
  assert.deepEqual(out.map, { whole: out.map.whole, streamed: out.map.whole, count: out.map.whole, batches: 1 });
  await page.context().close();
});

test('errors carry the CLI message and kind; two outputs of one name both live', async () => {
  const good = makeRaw(env.path('same.raw'), 8 * MiB, { chunks: [[0, 1 * MiB]] });
  const cut = env.path('cut.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', env.path('whole.qcow2'), String(64 * MiB)]);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 7 0 4M', env.path('whole.qcow2')], { stdio: 'ignore' });
  execFileSync('truncate', ['-s', '200000', env.path('whole.qcow2')]);
  execFileSync('mv', [env.path('whole.qcow2'), cut]);
  const page = await openPage(env);
  await pageFiles(page, [cut]);
  const err = await inPage(page, async (api, files) => {
    try {
      await api.convert(files, { format: 'raw' });
      return null;
    } catch (e) {
      return { name: e.name, message: e.message, kind: e.kind };
    }
  });
  assert.ok(err, 'a cut image converted');
  const cli = [join(ROOT, 'target', 'debug', 'vmdisk'), join(ROOT, 'target', 'release', 'vmdisk')].find(existsSync);
  if (cli) {
    const p = spawnSync(cli, ['convert', '-O', 'raw', '-o', env.path('cut.out'), cut], { encoding: 'utf8' });
    assert.equal(`vmdisk: ${err.message}`, p.stderr.trim());
  }
  assert.ok(['truncated', 'corrupt', 'io'].includes(err.kind), JSON.stringify(err));
  assert.deepEqual(await opfsEntries(page), [], 'a failed conversion left a file');

  await pageFiles(page, [good]);
  const two = await inPage(page, async (api, files) => {
    const a = await api.convert(files, { format: 'qcow2' });
    const b = await api.convert(files, { format: 'qcow2' });
    const sizes = [(await a.file.arrayBuffer()).byteLength, (await b.file.arrayBuffer()).byteLength];
    return { names: [a.name, b.name], files: [a.file.name, b.file.name], sizes };
  });
  assert.deepEqual(two.names, ['same.qcow2', 'same.qcow2']);
  // A file of the caller's (what showSaveFilePicker gives; here an OPFS handle): written through
  // a writable stream, and left as it was when the conversion fails.
  const picked = await inPage(page, async (api, files) => {
    const root = await navigator.storage.getDirectory();
    const handle = await root.getFileHandle('picked.bin', { create: true });
    const w = await handle.createWritable();
    await w.write('before');
    await w.close();
    const r = await api.convert(files, { format: 'raw', output: handle });
    const bytes = new Uint8Array(await (await handle.getFile()).arrayBuffer());
    const nonzero = bytes.findIndex((b) => b !== 0);
    await api.release(r); // not an OPFS output of its own: leaves the file alone
    const kept = (await handle.getFile()).size;
    const qcow = new Uint8Array(await (await fetch('data:application/octet-stream;base64,UUZJ+wAAAAM=')).arrayBuffer());
    let failed = null;
    try {
      await api.convert([new File([qcow, new Uint8Array(100)], 'cut.qcow2')], { format: 'raw', output: handle });
    } catch (e) { failed = e.kind; }
    const after = (await handle.getFile()).size;
    await root.removeEntry('picked.bin');
    return { name: r.name, fileName: r.file.name, opfsName: r.opfsName, size: r.size, nonzero, kept, failed, after };
  });
  assert.deepEqual(picked, { name: 'same-converted.raw', fileName: 'picked.bin', opfsName: null, size: 8 * MiB, nonzero: 0, kept: 8 * MiB, failed: picked.failed, after: 8 * MiB });
  assert.ok(picked.failed, 'a cut qcow2 converted');
  // Composed outputs: both files are readable at once (the browser renames a second download).
  assert.deepEqual(two.files, ['same.qcow2', 'same.qcow2']);
  assert.equal(two.sizes[0], two.sizes[1]);
  await page.context().close();
});

// Composed outputs in Chromium: what a conversion resolves to is a File made of slices of the
// picked files, generated tables and zero runs (www/worker.js, crate/src/compose.rs). Each is
// saved through a real download and checked with qemu-img compare and check: qcow2 -> raw and
// raw -> qcow2 at every cluster size with an odd size, zero runs and data in the last sector; a
// fragmented image with thousands of runs, within the part budget; a picked file that changes
// after the conversion; a cancelled conversion, which leaves no OPFS file and no object URL;
// a 20 GiB disk in a fresh profile, whose storage quota is a few GiB.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, statSync } from 'node:fs';
import { MiB, check, compare, convertOnPage, makeRaw, opfsEntries, openPage, pageFiles as pickHidden, pick, qemuImg, qemuIo, setup } from './lib.mjs';

const GiB = 1024 * MiB;
let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

/** Give the page files through an input of our own (`#compose-files`). */
const pageFiles = (page, paths) => pickHidden(page, paths, 'compose-files');

/** Convert the picked files with `options` through the API; the result stays in `window.out`. */
function convert(page, options) {
  return page.evaluate(async (options) => {
    const api = await import('/vmdisk.js');
    const files = Array.from(document.getElementById('compose-files').files);
    const t0 = performance.now();
    const r = await api.convert(files, options);
    window.out = r;
    return { name: r.name, size: r.size, parts: r.parts, spilled: r.spilledBytes, seconds: (performance.now() - t0) / 1000 };
  }, options);
}

/** Save `window.out` through a download link into `path`. */
async function save(page, path) {
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.evaluate(() => {
      const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(window.out.file), download: window.out.name });
      document.body.append(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 60_000);
    }),
  ]);
  await download.saveAs(path);
  assert.equal(await download.failure(), null);
  return path;
}

/** A raw disk of `size` bytes: data at the start, runs with zeros between, the last sector. */
function disk(path, size) {
  makeRaw(path, size, { chunks: [[0, 1 * MiB], [3 * MiB, 2 * MiB], [9 * MiB, 1 * MiB]] });
  qemuIo(path, 'raw', `write -P 0x5a ${size - 512} 512`, `write -P 0x33 ${7 * MiB + 4096} 1536`);
  return path;
}

test('qcow2 -> raw and raw -> qcow2 at every cluster size: downloads identical, tables only produced', async () => {
  const size = 13 * MiB + 3 * 512; // a multiple of no cluster size above 512
  const src = disk(env.path('c.raw'), size);
  const page = await openPage(env);
  for (const cs of [512, 4096, 65536, 2 * MiB]) {
    const q = env.path(`c-${cs}.qcow2`);
    qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', '-o', `cluster_size=${cs}`, src, q);
    await pageFiles(page, [q]);
    const toRaw = await convert(page, { format: 'raw' });
    assert.equal(toRaw.size, size, `${cs}: raw size`);
    assert.equal(toRaw.spilled, 0, `${cs}: nothing produced`);
    assert.ok(toRaw.parts >= 3, `${cs}: ${toRaw.parts} parts`);
    const out = await save(page, env.path(`back-${cs}.raw`));
    assert.equal(statSync(out).size, size);
    assert.equal(compare(src, 'raw', out, 'raw').status, 0, `${cs}: qcow2 -> raw differs`);

    await pageFiles(page, [src]);
    const toQcow2 = await convert(page, { format: 'qcow2', clusterSize: cs });
    assert.equal(toQcow2.spilled, 0, `${cs}: data referenced, tables in memory`);
    const q2 = await save(page, env.path(`out-${cs}.qcow2`));
    const c = check(q2);
    assert.equal(c.status, 0, `${cs}: qemu-img check: ${c.stderr}`);
    assert.equal(JSON.parse(qemuImg('info', '--output=json', q2))['cluster-size'], cs);
    assert.equal(compare(src, 'raw', q2, 'qcow2').status, 0, `${cs}: raw -> qcow2 differs`);
  }
  assert.deepEqual(await opfsEntries(page), [], 'nothing spilled, nothing in OPFS');
  await page.context().close();
});

test('a fragmented image: thousands of runs, parts within the budget, the rest spilled', async (t) => {
  // 512-byte clusters written back to front: guest order is the reverse of file order.
  const made = Date.now();
  const f = env.path('frag.qcow2');
  const runs = 3000;
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', f, String(runs * 1024));
  const cmds = [];
  for (let i = runs - 1; i >= 0; i--) cmds.push(`write -P ${(i % 250) + 1} ${i * 1024} 512`);
  for (let i = 0; i < cmds.length; i += 1000) qemuIo(f, 'qcow2', ...cmds.slice(i, i + 1000));
  t.diagnostic(`made ${Date.now() - made} ms`);
  const page = await openPage(env);
  await pageFiles(page, [f]);
  let t0 = Date.now();
  const all = await convert(page, { format: 'raw', maxParts: 100_000 });
  t.diagnostic(`all: ${JSON.stringify(all)} ${Date.now() - t0} ms`); t0 = Date.now();
  assert.ok(all.parts >= runs, `one part a run: ${all.parts}`);
  assert.equal(compare(f, 'qcow2', await save(page, env.path('frag-all.raw')), 'raw').status, 0);
  t.diagnostic(`saved ${Date.now() - t0} ms`); t0 = Date.now();
  const few = await convert(page, { format: 'raw', maxParts: 1001 });
  t.diagnostic(`few: ${JSON.stringify(few)} ${Date.now() - t0} ms`);
  assert.ok(few.parts <= 1001, `${few.parts} parts`);
  assert.ok(few.spilled > 0, 'past the budget the bytes are spilled');
  assert.equal(compare(f, 'qcow2', await save(page, env.path('frag-few.raw')), 'raw').status, 0);
  const q = await convert(page, { format: 'qcow2', clusterSize: 512, maxParts: 1001 });
  assert.ok(q.parts <= 1001, `${q.parts} parts`);
  const qp = await save(page, env.path('frag-few.qcow2'));
  assert.equal(check(qp).status, 0);
  assert.equal(compare(f, 'qcow2', qp, 'qcow2').status, 0);
  await page.context().close();
});

test('a picked file that changes after the conversion: a readable error, no download', async () => {
  const src = makeRaw(env.path('changing.raw'), 16 * MiB);
  const page = await openPage(env);
  await pick(page, src);
  await convertOnPage(page, env.path('changing-1.qcow2'), { format: 'qcow2' });
  await pageFiles(page, [src]); // picked again, for the engine below
  appendFileSync(src, Buffer.alloc(512, 1)); // the file changes on disk
  let downloaded = false;
  page.on('download', () => { downloaded = true; });
  await page.click('#download');
  await page.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
  const text = await page.textContent('#error');
  assert.match(text, /changing\.raw changed or became unreadable after it was picked: pick it again/);
  await page.waitForTimeout(500);
  assert.equal(downloaded, false, 'a download started from a changed file');
  // The engine says the same when the file changed before a conversion read it.
  const err = await convert(page, { format: 'raw' }).then(() => null, (e) => e.message);
  assert.match(String(err), /changing\.raw changed or became unreadable after it was picked: pick it again/);
  await page.context().close();
});

test('a cancelled conversion leaves no OPFS file and no object URL', async () => {
  const src = makeRaw(env.path('cancel.raw'), 192 * MiB, { chunks: [[0, 96 * MiB], [128 * MiB, 64 * MiB]] });
  const page = await openPage(env);
  await page.evaluate(() => {
    window.urls = new Set();
    const create = URL.createObjectURL.bind(URL);
    const revoke = URL.revokeObjectURL.bind(URL);
    URL.createObjectURL = (b) => { const u = create(b); window.urls.add(u); return u; };
    URL.revokeObjectURL = (u) => { window.urls.delete(u); revoke(u); };
  });
  await pick(page, src);
  await page.selectOption('#format', 'qcow2');
  await page.selectOption('#compression', 'zlib'); // slow enough to cancel, and it spills
  await page.click('#convert');
  await page.waitForFunction(() => (Number(document.getElementById('progress').value) || 0) > 0.05 * Number(document.getElementById('progress').max), null, { timeout: 120_000 });
  await page.click('#cancel');
  await page.waitForSelector('#convert-box[data-state="cancelled"]', { timeout: 60_000, state: 'attached' });
  await page.waitForFunction(async () => {
    const names = [];
    for await (const [name] of (await navigator.storage.getDirectory()).entries()) names.push(name);
    return names.length === 0;
  }, null, { timeout: 10_000 }).catch(() => {});
  assert.deepEqual(await opfsEntries(page), [], 'a cancelled conversion left a file');
  assert.equal(await page.evaluate(() => window.urls.size), 0, 'a cancelled conversion left an object URL');
  // A finished one holds one URL; the next conversion revokes it and holds its own.
  await convertOnPage(page, env.path('cancel-1.qcow2'), { format: 'qcow2' });
  await convertOnPage(page, env.path('cancel-2.qcow2'), { format: 'qcow2' });
  assert.equal(await page.evaluate(() => window.urls.size), 1);
  await page.context().close();
});

test('a 20 GiB disk converts to raw and qcow2 in a fresh profile: no storage quota bounds the output', async (t) => {
  const size = 20 * GiB;
  const q = env.path('big.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', q, String(size));
  qemuIo(q, 'qcow2', `write -P 0x11 0 4M`, `write -P 0x22 ${7 * GiB} 8M`, `write -P 0x33 ${size - MiB} 1M`);
  const page = await openPage(env); // a fresh context: a quota of a few GiB
  const quota = await page.evaluate(async () => (await navigator.storage.estimate()).quota);
  t.diagnostic(`quota ${(quota / GiB).toFixed(1)} GiB`);
  await pageFiles(page, [q]);
  const raw = await convert(page, { format: 'raw' });
  t.diagnostic(JSON.stringify(raw));
  assert.equal(raw.size, size);
  assert.equal(raw.spilled, 0);
  const bytes = await page.evaluate(async ({ GiB, size }) => {
    const f = window.out.file;
    const at = async (o) => new Uint8Array(await f.slice(o, o + 4).arrayBuffer());
    return [...await at(0), ...await at(7 * GiB + 100), ...await at(size - 4), ...await at(12 * GiB)];
  }, { GiB, size });
  assert.deepEqual(bytes, [0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, 0x33, 0x33, 0x33, 0x33, 0, 0, 0, 0]);
  const back = await convert(page, { format: 'qcow2' });
  t.diagnostic(JSON.stringify(back));
  const out = await save(page, env.path('big-back.qcow2'));
  assert.equal(check(out).status, 0);
  assert.equal(compare(q, 'qcow2', out, 'qcow2').status, 0);
  await page.context().close();
});

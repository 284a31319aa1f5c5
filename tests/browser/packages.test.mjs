// Packages on the page in headless Chromium: an OVA's disk cards, each disk converted from its
// card and all of them in a row, the integrity check (matching, tampered, cancelled), a UEC
// tarball's members, an xz-compressed qcow2 (decompressed into an OPFS scratch file), and a
// 9 GiB member behind a pax header converted with the worker's wasm memory bounded. Every
// package is built at test time (packages-lib.mjs, qemu-img, tar, xz, mkfs.ext4) and every
// download is compared with `qemu-img compare` against the disk that went in.
// Run: node --test --test-timeout=300000 tests/browser/packages.test.mjs
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import {
  MiB, check, compare, convertOnPage, makeRaw, opfsEntries, openPage, pick, qemuImg, qemuIo, setup,
} from './lib.mjs';
import {
  QCOW2, STREAM, bzImage, newc, noise, ova, ovftoolOvf, sh, sha256, sha256Sparse, writeSparse, writeTar,
} from './packages-lib.mjs';

const GiB = 1024 * MiB;
let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

/** Close a page after checking it stayed on 127.0.0.1 and threw nothing. */
async function finish(page) {
  if (process.env.SCREENSHOTS) await page.screenshot({ path: `${process.env.SCREENSHOTS}/packages-${Date.now()}.png`, fullPage: true });
  assert.deepEqual(page.outside, [], 'the page made requests outside 127.0.0.1');
  assert.deepEqual(page.errors, [], 'uncaught errors in the page');
  await page.context().close();
}

const cardOf = (page, i) => page.locator(`.disk-card[data-index="${i}"]`);

/** Save the download a card offers; returns the suggested name. */
async function saveCard(page, i, out) {
  const [download] = await Promise.all([page.waitForEvent('download'), cardOf(page, i).locator('[data-action=download]').click()]);
  await download.saveAs(out);
  return download.suggestedFilename();
}

/** Convert disk `i` from its card with the page's selectors set to `format`. */
async function convertCard(page, i, out, { format, compression = '' }) {
  await page.selectOption('#format', format);
  if (format === 'qcow2') await page.selectOption('#compression', compression);
  await cardOf(page, i).locator('[data-action=convert]').click();
  await page.waitForSelector(`.disk-card[data-index="${i}"]:is([data-state=done], [data-state=failed])`, { timeout: 120_000, state: 'attached' });
  assert.equal(await cardOf(page, i).getAttribute('data-state'), 'done', `disk ${i + 1}: ${await page.textContent('#error')}`);
  return saveCard(page, i, out);
}

/** Run the integrity check from the page and wait for it to end. */
async function verifyOnPage(page) {
  await page.click('#verify');
  await page.waitForSelector('#verify-status:is([data-state=done], [data-state=failed])', { timeout: 120_000, state: 'attached' });
  return { state: await page.getAttribute('#verify-status', 'data-state'), result: await page.getAttribute('#verify-status', 'data-result'), text: await page.textContent('#verify-status') };
}

/** The data offset of the first allocated cluster of a qcow2 file (qemu-img map). */
function firstDataOffset(qcow2) {
  const map = JSON.parse(qemuImg('map', '--output=json', '-f', 'qcow2', qcow2));
  return map.find((e) => e.data && e.offset !== undefined).offset;
}

/** A two-disk OVA as ovftool writes it: a streamOptimized VMDK and a qcow2 (capacity off by 4 MiB). */
function twoDiskOva(name, { flip = false } = {}) {
  const a = makeRaw(env.path(`${name}-a.raw`), 32 * MiB, { seed: 5 });
  const b = makeRaw(env.path(`${name}-b.raw`), 16 * MiB, { seed: 6 });
  const vmdk = env.path(`${name}-disk1.vmdk`);
  const qcow = env.path(`${name}-disk2.qcow2`);
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', a, vmdk);
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', b, qcow);
  const ovf = env.path(`${name}.ovf`);
  writeFileSync(ovf, ovftoolOvf(name, [
    { href: `${name}-disk1.vmdk`, mib: 32, format: STREAM },
    { href: `${name}-disk2.qcow2`, mib: 20, format: QCOW2 },
  ]));
  const path = env.path(`${name}.ova`);
  const at = ova(path, [ovf, vmdk, qcow]);
  if (flip) {
    // One byte of the qcow2's data changes after the manifest was made: its headers stay sound.
    const pos = at[`${name}-disk2.qcow2`] + firstDataOffset(qcow) + 1000;
    const bytes = readFileSync(path);
    bytes[pos] ^= 0x40;
    writeFileSync(path, bytes);
  }
  return { path, a, b };
}

test('an OVA with two disks: cards, one disk from its card, then all; integrity checked, a flipped byte caught', async () => {
  const { path, a, b } = twoDiskOva('web');
  const page = await openPage(env);
  const report = await pick(page, path);
  assert.equal(report.format, 'ova');
  assert.equal(report.disks.length, 2);

  // The cards: what the descriptor says of each disk, a flagged capacity, the VM.
  assert.equal(await page.isVisible('#disks-box'), true);
  assert.equal(await page.locator('#disks .disk-card').count(), 2);
  const one = await cardOf(page, 0).textContent();
  assert.match(one, /web-disk1\.vmdk/);
  assert.match(one, /vmdk/);
  assert.match(one, /32 MiB/);
  assert.match(one, /Virtual machine\s*web/);
  assert.match(one, /scsi \(lsilogic\) 0, slot 0/);
  assert.equal(await cardOf(page, 0).getAttribute('data-role'), 'disk');
  assert.equal(await cardOf(page, 0).locator('[data-flag=capacity]').count(), 0);
  const two = cardOf(page, 1);
  assert.match(await two.textContent(), /scsi \(lsilogic\) 0, slot 1/);
  assert.equal(await two.getAttribute('data-format'), 'qcow2');
  assert.equal(await two.locator('[data-flag=capacity]').isVisible(), true);
  assert.match(await two.locator('[data-flag=capacity]').textContent(), /20 MiB.*disagrees.*16 MiB/);
  assert.equal(await two.locator('li[data-code="capacity-mismatch"]').count(), 1);
  assert.match(await page.textContent('#vms'), /web[\s\S]*2 CPUs[\s\S]*4 GiB memory[\s\S]*VmxNet3/);
  // The main Convert button names the disk it takes.
  assert.match(await page.textContent('#convert-which'), /disk 1, web-disk1\.vmdk/);
  assert.equal(await page.isVisible('#convert-all'), true);

  // Disk 2 from its card, as raw.
  const name = await convertCard(page, 1, env.path('web-2.raw'), { format: 'raw' });
  assert.equal(name, 'web-disk2.raw');
  assert.equal(compare(b, 'raw', env.path('web-2.raw'), 'raw').status, 0, 'disk 2 differs from its source');
  assert.equal(await cardOf(page, 0).getAttribute('data-state'), 'idle');

  // Every disk, as qcow2, one after another: each card gets its download.
  await page.selectOption('#format', 'qcow2');
  await page.selectOption('#compression', '');
  await page.click('#convert-all');
  await page.waitForSelector('#convert-all-status[data-state]', { timeout: 120_000, state: 'attached' });
  assert.equal(await page.getAttribute('#convert-all-status', 'data-state'), 'done', await page.textContent('#convert-all-status'));
  assert.match(await page.textContent('#convert-all-status'), /2 of 2 disks converted/);
  // (An output never takes its input's name: web-disk2.qcow2 becomes web-disk2-converted.qcow2.)
  for (const [i, src, want] of [[0, a, 'web-disk1.qcow2'], [1, b, 'web-disk2-converted.qcow2']]) {
    assert.equal(await cardOf(page, i).getAttribute('data-state'), 'done');
    const out = env.path(`all-${i}.qcow2`);
    assert.equal(await saveCard(page, i, out), want);
    assert.equal(check(out).status, 0, `qemu-img check ${want}`);
    assert.equal(compare(src, 'raw', out, 'qcow2').status, 0, `${want} differs from its source`);
  }
  // The outputs are composed of the OVA's member bytes and generated tables: nothing was
  // produced, so nothing is in OPFS.
  assert.deepEqual(await opfsEntries(page), []);

  // The integrity check: every digest matches; the verdict stays safe.
  assert.match(await page.textContent('#verdict'), /Check integrity/);
  const ok = await verifyOnPage(page);
  assert.equal(ok.state, 'done');
  assert.equal(ok.result, 'ok', ok.text);
  assert.match(ok.text, /3 of 3 manifest digests checked and matching/);
  assert.match(await page.locator('#findings li[data-code="manifest"]').textContent(), /3 of 3/);
  assert.equal(await page.getAttribute('#verdict', 'data-safe'), 'true');
  assert.doesNotMatch(await page.textContent('#verdict'), /Check integrity/);

  // The same package with one byte of disk 2 changed after its manifest was made.
  const bad = twoDiskOva('tampered', { flip: true });
  const tampered = await pick(page, bad.path);
  assert.equal(tampered.safety.safe, true, 'inspecting reads headers only: the damage is not seen yet');
  assert.equal(await page.getAttribute('#verify-status', 'data-state'), 'idle');
  assert.deepEqual(await opfsEntries(page), [], 'a new file set lets the old outputs go');
  const caught = await verifyOnPage(page);
  assert.equal(caught.state, 'done');
  assert.equal(caught.result, 'bad', caught.text);
  assert.match(caught.text, /1 file does not match the manifest/);
  const li = page.locator('#findings li[data-code="digest-mismatch"]');
  assert.equal(await li.count(), 1);
  assert.match(await li.getAttribute('class'), /critical/);
  assert.match(await li.textContent(), /tampered-disk2\.qcow2/);
  assert.equal(await page.getAttribute('#verdict', 'data-safe'), 'false');
  assert.match(await page.textContent('#verdict'), /Unsafe/);

  // Converting the damaged disk fails too (a conversion checks the digests of what it reads),
  // and leaves nothing behind.
  await page.selectOption('#format', 'raw');
  await cardOf(page, 1).locator('[data-action=convert]').click();
  await page.waitForSelector('.disk-card[data-index="1"]:is([data-state=done], [data-state=failed])', { timeout: 60_000, state: 'attached' });
  assert.equal(await cardOf(page, 1).getAttribute('data-state'), 'failed');
  assert.match(await page.textContent('#error'), /tampered-disk2\.qcow2.*manifest/);
  assert.equal(await cardOf(page, 1).locator('[data-action=download]').count(), 0);
  assert.deepEqual(await opfsEntries(page), []);
  // Disk 1 is intact: it still converts.
  const name1 = await convertCard(page, 0, env.path('tampered-1.raw'), { format: 'raw' });
  assert.equal(name1, 'tampered-disk1.raw');
  assert.equal(compare(bad.a, 'raw', env.path('tampered-1.raw'), 'raw').status, 0);
  await finish(page);
});

test('cancelling the integrity check half-way, then checking again', async () => {
  // A 1 GiB sparse raw disk in an OVA written by hand (holes stay holes on disk), with a
  // manifest: its check takes several seconds in the browser, time enough to cancel it.
  const size = 1024 * MiB;
  const writes = [[0, noise(MiB, 1)], [512 * MiB + 12345 * 512, noise(MiB, 2)], [size - MiB, noise(MiB, 3)]];
  const ovfText = ovftoolOvf('vbig', [{ href: 'vbig.img', mib: 1024 }]);
  writeFileSync(env.path('vbig.ovf'), ovfText);
  const mf = `SHA256(vbig.ovf)= ${sha256(env.path('vbig.ovf'))}\nSHA256(vbig.img)= ${sha256Sparse(size, writes)}\n`;
  const path = env.path('vbig.ova');
  writeTar(path, [{ name: 'vbig.ovf', data: Buffer.from(ovfText) }, { name: 'vbig.img', size, writes }, { name: 'vbig.mf', data: Buffer.from(mf) }]);

  const page = await openPage(env);
  const report = await pick(page, path);
  assert.equal(report.disks[0]['virtual-size'], size);
  await page.click('#verify');
  assert.equal(await page.isVisible('#verify-cancel'), true);
  await page.waitForFunction(() => {
    const p = document.getElementById('verify-progress');
    return p.hasAttribute('value') && p.value > p.max * 0.05 && p.value < p.max * 0.6;
  }, null, { timeout: 60_000, polling: 50 });
  await page.click('#verify-cancel');
  await page.waitForSelector('#verify-status[data-state="cancelled"]', { timeout: 30_000, state: 'attached' });
  assert.match(await page.textContent('#verify-status'), /Cancelled/);
  assert.equal(await page.isVisible('#error'), false, 'a cancel is not an error');
  assert.equal(await page.locator('#findings li[data-code="manifest"]').count(), 0, 'a cancelled check concludes nothing');
  assert.equal(await page.isVisible('#verify'), true);
  assert.equal(await page.isEnabled('#verify'), true);

  const again = await verifyOnPage(page);
  assert.equal(again.state, 'done');
  assert.equal(again.result, 'ok', again.text);
  assert.match(again.text, /2 of 2 manifest digests checked and matching/);
  await finish(page);
});

test('a UEC tarball: kernel, ramdisk and machine image cards, upload steps, the machine image converted', async () => {
  const img = env.path('focal-server-cloudimg-amd64.img');
  execFileSync('truncate', ['-s', '48M', img]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'cloudimg-rootfs', img]);
  qemuIo(img, 'raw', 'write -P 0x5a 20M 4M');
  const kernel = 'focal-server-cloudimg-amd64-vmlinuz-generic';
  const ramdisk = 'focal-server-cloudimg-amd64-initrd-generic';
  writeFileSync(env.path(kernel), bzImage());
  writeFileSync(env.path('initrd.cpio'), Buffer.concat([newc('init', '#!/bin/sh\n'), newc('TRAILER!!!', '')]));
  sh(env.dir, `gzip -c initrd.cpio > ${ramdisk} && tar -czf uec.tar.gz ${kernel} ${ramdisk} focal-server-cloudimg-amd64.img`);

  // A phone-sized screen: the cards must fit without sideways scrolling.
  const page = await openPage(env, { viewport: { width: 360, height: 740 } });
  const report = await pick(page, env.path('uec.tar.gz'));
  assert.equal(report.format, 'uec');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a 360px screen`);
  const unlabeled = await page.evaluate(() => [...document.querySelectorAll('input, select, button, progress')]
    .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
    .map((e) => e.id || e.outerHTML.slice(0, 60)));
  assert.deepEqual(unlabeled, []);
  const roles = await page.locator('.disk-card').evaluateAll((cards) => cards.map((c) => [c.dataset.role, c.dataset.convertible]));
  assert.deepEqual(roles, [['aki', 'false'], ['ari', 'false'], ['ami', 'true']]);
  for (const [i, words, glance] of [[0, /kernel \(AKI\)/, 'disk_format=aki container_format=aki'], [1, /ramdisk \(ARI\)/, 'disk_format=ari container_format=ari'],
    [2, /machine image \(AMI\)/, 'disk_format=ami container_format=ami']]) {
    const text = await cardOf(page, i).textContent();
    assert.match(text, words);
    assert.ok(text.includes(glance), `card ${i + 1} names its glance formats: ${text}`);
  }
  // The kernel is not a disk: no Convert button, a note, and the not-a-disk finding explained.
  assert.equal(await cardOf(page, 0).locator('[data-action=convert]').count(), 0);
  assert.match(await cardOf(page, 0).locator('[data-part=not-convertible]').textContent(), /kernel is not a disk/);
  assert.match(await cardOf(page, 0).locator('li[data-code="not-a-disk"]').textContent(), /boot file, not a disk/i);
  assert.equal(await cardOf(page, 2).locator('[data-action=convert]').count(), 1);
  // The upload steps, kernel and ramdisk first.
  const steps = await page.locator('#uec-register li').allTextContents();
  assert.equal(steps.length, 3);
  assert.match(steps[0], new RegExp(`${kernel}.*disk_format=aki`));
  assert.match(steps[2], /kernel_id.*ramdisk_id/);
  assert.equal(await page.isVisible('#convert-all'), false, 'one disk only: no "Convert all"');
  assert.match(await page.textContent('#convert-which'), /disk 3, focal-server-cloudimg-amd64\.img/);

  // The main Convert button takes the machine image.
  const out = await convertOnPage(page, env.path('uec-ami.raw'), { format: 'raw' });
  assert.equal(out.suggested, 'focal-server-cloudimg-amd64.raw');
  assert.equal(compare(img, 'raw', out.path, 'raw').status, 0, 'the machine image differs');
  // Its integrity: no manifest; the engine does not check a tarball's own gzip stream (yet), so
  // the check may find nothing to check. It must not find a problem.
  const checked = await verifyOnPage(page);
  assert.equal(checked.state, 'done');
  assert.ok(['ok', 'none'].includes(checked.result), checked.text);
  if (checked.result === 'ok') assert.match(checked.text, /gzip stream decodes whole/);
  await finish(page);
});

test('an xz-compressed qcow2 converts through an OPFS scratch file that goes away, also on cancel', async (t) => {
  const raw = makeRaw(env.path('z.raw'), 64 * MiB, { seed: 9 });
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, env.path('z.qcow2'));
  sh(env.dir, 'xz -T2 -1 -k z.qcow2');
  // Long enough to cancel: 160 MiB of data (compresses to almost nothing; decompressing it in
  // the worker takes several seconds).
  const big = env.path('zbig.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', big, String(256 * MiB));
  qemuIo(big, 'qcow2', 'write -P 0x5a 0 160M');
  sh(env.dir, 'xz -T2 -1 -k zbig.qcow2');

  const page = await openPage(env);
  const report = await pick(page, env.path('z.qcow2.xz'));
  assert.equal(report.format, 'compressed');
  assert.equal(report.disks[0].format, 'qcow2');
  assert.equal(report.disks[0].compression, 'xz');
  assert.match(await cardOf(page, 0).textContent(), /xz-compressed in the package/);
  assert.equal(await cardOf(page, 0).locator('li[data-code="compressed-disk"]').count(), 1);
  const out = await convertOnPage(page, env.path('z-out.qcow2'), { format: 'qcow2' });
  assert.equal(compare(raw, 'raw', out.path, 'qcow2').status, 0, 'the converted disk differs');
  assert.equal(check(out.path).status, 0);
  const left = await opfsEntries(page);
  assert.equal(left.length, 1, `OPFS: ${left}`);
  assert.ok(left[0].endsWith('.qcow2') && !left[0].includes('vmdisk-scratch'), `OPFS: ${left}`);

  // Cancelled while it runs (decompressing or converting): nothing at all is left.
  await pick(page, env.path('zbig.qcow2.xz'));
  assert.deepEqual(await opfsEntries(page), [], 'the previous output goes with its file set');
  await page.click('#convert');
  await page.waitForFunction(() => /Decompressing|%/.test(document.getElementById('convert-status').textContent), null, { timeout: 60_000, polling: 50 });
  const clicked = Date.now();
  await page.click('#cancel');
  await page.waitForSelector('#convert-box[data-state="cancelled"]', { timeout: 60_000, state: 'attached' });
  // The worker decodes with synchronous reads, but gives its event loop a turn every few MiB:
  // a cancel takes effect at once, not when the decompression ends.
  const took = (Date.now() - clicked) / 1000;
  t.diagnostic(`the cancel took effect after ${took.toFixed(1)} s`);
  assert.ok(took < 3, `the cancel took ${took.toFixed(1)} s`);
  assert.equal(await page.isVisible('#error'), false, 'a cancel is not an error');
  // The worker removes the scratch file as the conversion unwinds.
  let entries = await opfsEntries(page);
  for (let i = 0; i < 50 && entries.length; i++) {
    await page.waitForTimeout(100);
    entries = await opfsEntries(page);
  }
  assert.deepEqual(entries, [], 'OPFS entries left after cancel');
  await finish(page);
});

test('a 9 GiB member behind a pax size record converts with the worker under 256 MiB of wasm memory', async (t) => {
  const size = 9 * GiB; // over ustar's 8 GiB: the size is in a pax record
  const writes = [[0, noise(65536, 5)], [4 * GiB + 777 * 512, noise(65536, 7)], [size - 65536, noise(65536, 6)]];
  const ovfText = ovftoolOvf('huge', [{ href: 'huge.img', mib: size / MiB }]);
  const path = env.path('huge.ova');
  writeTar(path, [{ name: 'huge.ovf', data: Buffer.from(ovfText) }, { name: 'huge.img', size, writes }]);
  // The tar really carries the pax record (the ustar size field says 0).
  const fd = openSync(path, 'r');
  const first = Buffer.alloc(8192);
  readSync(fd, first, 0, first.length, 0);
  closeSync(fd);
  const head = first.toString('latin1');
  assert.ok(head.includes('size=9663676416\n'), 'no pax size record');
  const reference = writeSparse(env.path('huge.raw'), size, writes);

  const page = await openPage(env);
  const report = await pick(page, path);
  assert.equal(report.disks[0]['virtual-size'], size);
  assert.equal(report.disks[0].format, 'raw');
  await page.evaluate(() => {
    const input = Object.assign(document.createElement('input'), { type: 'file', id: 'api-files', hidden: true });
    document.body.append(input);
  });
  await page.setInputFiles('#api-files', path);
  const result = await page.evaluate(async () => {
    const files = Array.from(document.getElementById('api-files').files);
    const r = await window.vmdisk.convert(files, { format: 'qcow2', disk: 0 });
    window.hugeResult = r;
    return { name: r.name, size: r.size, virtualSize: r.virtualSize, wasm: r.wasmMemoryBytes, seconds: r.seconds };
  });
  assert.equal(result.name, 'huge.qcow2');
  assert.equal(result.virtualSize, size);
  t.diagnostic(`9 GiB raw member -> qcow2 in ${result.seconds.toFixed(1)} s, worker wasm memory ${result.wasm / MiB} MiB`);
  assert.ok(result.wasm < 256 * MiB, `worker wasm memory ${result.wasm / MiB} MiB`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.evaluate(() => {
    const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(window.hugeResult.file), download: window.hugeResult.name });
    document.body.append(a);
    a.click();
  })]);
  const out = env.path('huge.qcow2');
  await download.saveAs(out);
  assert.equal(JSON.parse(qemuImg('info', '--output=json', out))['virtual-size'], size);
  assert.equal(check(out).status, 0);
  assert.equal(compare(reference, 'raw', out, 'qcow2').status, 0, 'the 9 GiB disk differs from its source');
  await page.evaluate(() => window.vmdisk.release(window.hugeResult));
  await finish(page);
});

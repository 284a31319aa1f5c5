// The cloud verdicts and the glance block on the page: one verdict per cloud from the report's
// `clouds` (a fix that is a vmdisk conversion gets a button that runs it), the glance values as
// `vmdisk info --json` gives them, and "Compute checksums" (hash()) against node's own MD5 and
// SHA-512 of the file, with its progress, Cancel, and a second run after a cancel.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { MiB, cliInfo, compare, makeRaw, openPage, pageFiles, pick, qemuImg, setup } from './lib.mjs';
import { ova, ovftoolOvf, STREAM } from './packages-lib.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

const GiB = 1024 * MiB;

/** MD5 and SHA-512 of a file, read in 16 MiB pieces. */
function digests(path) {
  const md5 = createHash('md5');
  const sha = createHash('sha512');
  const buf = Buffer.alloc(16 * MiB);
  const fd = openSync(path, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) {
      md5.update(buf.subarray(0, n));
      sha.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return { checksum: md5.digest('hex'), os_hash_algo: 'sha512', os_hash_value: sha.digest('hex') };
}

async function finish(page) {
  assert.deepEqual(page.outside, [], 'the page made requests outside 127.0.0.1');
  assert.deepEqual(page.errors, [], 'uncaught errors in the page');
  await page.context().close();
}

/** The verdict tiles as the page shows them: [target, accepted]. */
const tiles = (page) => page.$$eval('#clouds > li', (lis) => lis.map((li) => [li.dataset.target, li.dataset.accepted === 'true']));

test('a qcow2: four verdicts, OpenStack accepts, Azure refuses with its fix, AWS\'s fix converts on the page', async () => {
  const raw = makeRaw(env.path('vm.img'), 24 * MiB);
  const src = env.path('vm.qcow2');
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, src);
  const page = await openPage(env);
  const report = await pick(page, src);
  assert.deepEqual(await tiles(page), [['openstack', true], ['aws', false], ['azure', false], ['gce', false]]);
  assert.deepEqual(report.clouds.map((v) => [v.target, v.accepted]), await tiles(page));
  assert.equal(await page.locator('#cloud-reasons [data-target=openstack]').count(), 0, 'an accepted target lists no reasons');

  // Azure: the reason and its fix in words, as the report carries them.
  const azure = report.clouds.find((v) => v.target === 'azure');
  assert.deepEqual(azure.reasons.map((r) => r.code), ['format-not-accepted']);
  const li = page.locator('#cloud-reasons [data-target=azure] li[data-code="format-not-accepted"]');
  assert.match(await li.locator('.reason-msg').textContent(), /Azure takes only fixed-size VHD files, and this is qcow2/);
  const fix = await li.locator('.reason-fix').textContent();
  assert.equal(fix, `What to do: ${azure.reasons[0].fix}`);
  assert.match(fix, /qemu-img convert -f qcow2 vm\.qcow2 -O vpc -o subformat=fixed,force_size vm\.vhd$/);
  // qemu-img writes the VHD, not the page: no button.
  assert.equal(await li.locator('[data-action=fix-convert]').count(), 0);

  // GCE's fix starts with a conversion the page can do, and goes on with tar.
  assert.equal(await page.textContent('#cloud-reasons [data-target=gce] [data-action=fix-convert]'), 'Convert to raw: the first step');

  // AWS: "vmdisk convert -O raw -o vm.raw vm.qcow2", which the page runs with the button.
  const aws = page.locator('#cloud-reasons [data-target=aws] li[data-code="format-not-accepted"]');
  const button = aws.locator('[data-action=fix-convert]');
  assert.equal(await button.textContent(), 'Convert to raw here');
  await page.selectOption('#format', 'qcow2');
  await button.click();
  await page.waitForSelector('#convert-box[data-state="done"]', { timeout: 120_000, state: 'attached' });
  assert.equal(await page.inputValue('#format'), 'raw');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  assert.equal(download.suggestedFilename(), 'vm.raw');
  const out = env.path('vm-from-fix.raw');
  await download.saveAs(out);
  assert.equal(compare(src, 'qcow2', out, 'raw').status, 0, 'the fix\'s raw output differs from the qcow2');

  // The CLI says the same of every cloud.
  const cli = cliInfo([src]);
  if (cli) assert.deepEqual(report.clouds, cli.clouds);
  await finish(page);
});

test('a fixed VHD of whole MiB: Azure accepts it; a dynamic one is refused as not fixed', async () => {
  const fixed = env.path('fixed.vhd');
  qemuImg('create', '-q', '-f', 'vpc', '-o', 'subformat=fixed,force_size=on', fixed, String(16 * MiB));
  const dynamic = env.path('dynamic.vhd');
  qemuImg('create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic,force_size=on', dynamic, String(16 * MiB));
  const page = await openPage(env);
  const report = await pick(page, fixed);
  assert.equal(report.format, 'vhd');
  assert.equal(report['virtual-size'], 16 * MiB);
  const shown = Object.fromEntries(await tiles(page));
  assert.equal(shown.azure, true, JSON.stringify(report.clouds));
  assert.equal(await page.locator('#cloud-reasons [data-target=azure]').count(), 0);
  assert.equal(await page.getAttribute('#clouds [data-target=azure]', 'class'), 'cloud ok');
  assert.match(await page.textContent('#clouds [data-target=azure]'), /Accepted/);

  await pick(page, dynamic);
  assert.equal(Object.fromEntries(await tiles(page)).azure, false);
  assert.match(await page.textContent('#cloud-reasons [data-target=azure] li[data-code="vhd-not-fixed"] .reason-msg'), /the VHD is dynamic/i);
  await finish(page);
});

test('the glance block shows what vmdisk info --json declares; checksums match md5sum and sha512sum', async () => {
  const src = env.path('glance.qcow2');
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', makeRaw(env.path('glance.img'), 1536 * MiB + 4096, { chunks: [[0, MiB], [5 * MiB, 3 * MiB]] }), src);
  const page = await openPage(env);
  const report = await pick(page, src);
  const values = await page.$$eval('#glance dd[data-key]', (dds) => Object.fromEntries(dds.map((d) => [d.dataset.key, d.dataset.value])));
  const expected = { disk_format: 'qcow2', container_format: 'bare', size: readFileSync(src).length, virtual_size: 1536 * MiB + 4096, min_disk: 2 };
  assert.deepEqual(values, Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, String(v)])));
  assert.deepEqual(report.glance, expected);
  const cli = cliInfo([src]);
  if (cli) assert.deepEqual(report.glance, cli.glance);
  assert.match(await page.textContent('#glance-command'), /--disk-format qcow2 --container-format bare --min-disk 2 --file glance\.qcow2 glance\.qcow2/);

  await page.click('#hash');
  await page.waitForSelector('#hash-box[data-state="done"]', { timeout: 60_000, state: 'attached' });
  const want = digests(src);
  const got = {
    checksum: await page.textContent('#hash-checksum'),
    os_hash_algo: await page.textContent('#hash-os_hash_algo'),
    os_hash_value: await page.textContent('#hash-os_hash_value'),
  };
  assert.deepEqual(got, want);
  // The copy button puts the digest on the clipboard.
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
  await page.click('#hash-result [aria-label="Copy SHA-512"]');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), want.os_hash_value);
  await finish(page);
});

test('checksums of a large sparse file: Cancel stops mid-way, the page says so, and a second run completes', async () => {
  const big = env.path('big.raw');
  qemuImg('create', '-q', '-f', 'raw', big, String(GiB));
  const head = Buffer.from('vmdisk hash test: head\n');
  const tail = Buffer.from('vmdisk hash test: tail\n');
  const fd = openSync(big, 'r+');
  try {
    writeSync(fd, head, 0, head.length, 0);
    writeSync(fd, tail, 0, tail.length, GiB - tail.length);
  } finally {
    closeSync(fd);
  }
  const page = await openPage(env);
  await pick(page, big);
  await page.click('#hash');
  // Wait for real progress (a determinate bar past 0), then cancel.
  await page.waitForFunction(() => {
    const p = document.getElementById('hash-progress');
    return p.hasAttribute('value') && p.value > 0 && p.value < p.max;
  }, null, { timeout: 60_000 });
  assert.equal(await page.getAttribute('#hash-box', 'data-state'), 'running');
  assert.equal(await page.isDisabled('#convert'), true, 'a conversion must wait while the checksums run');
  await page.click('#hash-cancel');
  await page.waitForSelector('#hash-box[data-state="cancelled"]', { timeout: 30_000, state: 'attached' });
  assert.match(await page.textContent('#hash-status'), /Cancelled/);
  assert.equal(await page.isHidden('#hash-result'), true);
  assert.equal(await page.isVisible('#hash'), true);
  assert.equal(await page.isEnabled('#hash'), true);
  assert.equal(await page.isEnabled('#convert'), true);

  await page.click('#hash');
  await page.waitForSelector('#hash-box[data-state="done"]', { timeout: 120_000, state: 'attached' });
  const want = digests(big);
  assert.equal(await page.textContent('#hash-checksum'), want.checksum);
  assert.equal(await page.textContent('#hash-os_hash_value'), want.os_hash_value);
  await finish(page);
});

test('hash() through vmdisk.js: the main file of a set, a package file, and an abort', async () => {
  const base = env.path('api-base.qcow2');
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', makeRaw(env.path('api-base.img'), 8 * MiB, { seed: 3 }), base);
  const overlay = env.path('api-overlay.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', basename(base), '-F', 'qcow2', overlay);
  const vmdk = env.path('api-disk.vmdk');
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', makeRaw(env.path('api-disk.img'), 8 * MiB, { seed: 4 }), vmdk);
  const ovf = env.path('api.ovf');
  writeFileSync(ovf, ovftoolOvf('api', [{ href: basename(vmdk), mib: 8, format: STREAM }]));
  const pkg = env.path('api.ova');
  ova(pkg, [ovf, vmdk]);

  const page = await openPage(env);
  const hashOf = (id) => page.evaluate((id) => window.vmdisk.hash(Array.from(document.getElementById(id).files)), id);
  // The backing file first: the overlay is still the file the user means.
  await pageFiles(page, [base, overlay], 'set');
  assert.deepEqual(await hashOf('set'), digests(overlay));
  await pageFiles(page, [pkg], 'pkg');
  assert.deepEqual(await hashOf('pkg'), digests(pkg));
  const report = await page.evaluate(() => window.vmdisk.inspect(document.getElementById('pkg').files));
  assert.equal(report.glance.container_format, 'ova');
  assert.equal(report.glance.size, readFileSync(pkg).length);

  // Progress in bytes of the file; an abort rejects with an AbortError.
  const run = await page.evaluate(async () => {
    const files = document.getElementById('pkg').files;
    const seen = [];
    await window.vmdisk.hash(files, { onProgress: (p) => seen.push([p.done, p.total]) });
    const c = new AbortController();
    c.abort();
    const aborted = await window.vmdisk.hash(files, { signal: c.signal }).then(() => 'resolved', (e) => e.name);
    return { seen, aborted, size: files[0].size };
  });
  assert.ok(run.seen.length > 0);
  assert.deepEqual(run.seen.at(-1), [run.size, run.size]);
  assert.equal(run.aborted, 'AbortError');
  await finish(page);
});

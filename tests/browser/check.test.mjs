// The thorough check in the browser (`check()` and the page's "Check thoroughly"), on images made
// at test time and damaged by byte edits here: a clean qcow2, one with a leaked cluster, one with
// a data cluster's refcount zeroed, an OVA whose disk changed after its manifest was written.
// Each is compared with `qemu-img check --output=json` (the counts and the exit status) and, when
// a CLI build is around, with `vmdisk check --json` (the whole result). Then: cancelling a check
// mid-way, the guest's partition table in the report, and the cloud verdicts after "Check
// integrity". Run: node --test tests/browser/check.test.mjs
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { MiB, check as qemuCheck, cliCheck, cliInfo, opfsEntries, openPage, pageFiles, pick, qemuImg, qemuIo, setup } from './lib.mjs';
import { ova, ovftoolOvf, STREAM } from './packages-lib.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

async function finish(page) {
  assert.deepEqual(page.outside, [], 'the page made requests outside 127.0.0.1');
  assert.deepEqual(page.errors, [], 'uncaught errors in the page');
  await page.context().close();
}

// ---------------------------------------------------------------------------------------------
// Damaging a qcow2 (header fields: docs/interop/qcow2.txt in qemu; all big-endian).

function qcow2Layout(file) {
  const buf = readFileSync(file);
  const clusterBits = buf.readUInt32BE(20);
  const refcountOrder = buf.readUInt32BE(96);
  assert.equal(refcountOrder, 4, 'the test edits 16-bit refcounts');
  return { buf, cluster: 2 ** clusterBits, table: Number(buf.readBigUInt64BE(48)) };
}

/** Set the stored refcount of host cluster `index` (its refcount block must exist). */
function setRefcount(file, index, value) {
  const { buf, cluster, table } = qcow2Layout(file);
  const perBlock = cluster / 2;
  const entry = buf.readBigUInt64BE(table + 8 * Math.floor(index / perBlock)) & ~0x1ffn;
  assert.ok(entry > 0n, `no refcount block covers cluster ${index}`);
  const at = Buffer.alloc(2);
  at.writeUInt16BE(value);
  const fd = openSync(file, 'r+');
  writeSync(fd, at, 0, 2, Number(entry) + 2 * (index % perBlock));
  closeSync(fd);
}

/** A qcow2 with data in a few places, its clusters all accounted for. */
function cleanQcow2(name) {
  const file = env.path(name);
  qemuImg('create', '-q', '-f', 'qcow2', file, String(64 * MiB));
  qemuIo(file, 'qcow2', 'write -P 0x5a 0 3M', 'write -P 0xa5 20M 1M');
  return file;
}

/** One cluster appended to the file with refcount 1 and nothing using it: a leak. */
function leakOne(file) {
  const { buf, cluster } = qcow2Layout(file);
  const index = Math.ceil(buf.length / cluster);
  truncateSync(file, (index + 1) * cluster);
  setRefcount(file, index, 1);
}

/** The first guest data cluster's refcount set to 0 while the L2 table still uses it: corrupt. */
function zeroDataRefcount(file) {
  const { cluster } = qcow2Layout(file);
  const rows = JSON.parse(qemuImg('map', '--output=json', '-f', 'qcow2', file));
  const data = rows.find((r) => r.data && r.offset !== undefined);
  setRefcount(file, data.offset / cluster, 0);
}

// ---------------------------------------------------------------------------------------------
// Running the check three ways.

/** The sum of a counter over a result and a package's disks (absent counts 0, as qemu-img omits it). */
const count = (r, key) => (r?.[key] ?? 0) + (r?.disks ?? []).reduce((n, d) => n + count(d, key), 0);

/** The check through the API, on files handed to the page. */
async function apiCheck(page, paths, options = {}) {
  await pageFiles(page, paths, 'test-files');
  return page.evaluate((o) => window.vmdisk.check(document.getElementById('test-files').files, o), options);
}

/** "Check thoroughly" on the page, after picking `paths`: what the result block shows. */
async function pageCheck(page, paths) {
  await pick(page, paths);
  assert.equal(await page.isVisible('#check-card'), true, 'the report shows the check');
  await page.click('#check');
  await page.waitForSelector('#check-box:is([data-state=done], [data-state=failed])', { timeout: 120_000, state: 'attached' });
  assert.equal(await page.getAttribute('#check-box', 'data-state'), 'done', await page.textContent('#error'));
  const s = page.locator('#check-summary');
  return {
    exit: Number(await s.getAttribute('data-exit-code')),
    corruptions: Number(await s.getAttribute('data-corruptions')),
    leaks: Number(await s.getAttribute('data-leaks')),
    errors: Number(await s.getAttribute('data-check-errors')),
    text: await s.textContent(),
    problems: await page.locator('#check-problems li').allTextContents(),
  };
}

/** The API's result is the CLI's, plus the exit status the CLI exits with. */
function sameAsCli(t, result, paths) {
  const cli = cliCheck(paths);
  if (!cli) {
    t.diagnostic('no vmdisk CLI build found: the comparison with vmdisk check was skipped');
    return;
  }
  const { 'exit-code': code, ...rest } = result;
  assert.equal(code, cli.status, 'exit-code is the status vmdisk check exits with');
  assert.deepEqual(rest, cli.json);
}

test('clean, leaked and corrupt qcow2: the page, check(), qemu-img check and vmdisk check agree', async (t) => {
  const clean = cleanQcow2('clean.qcow2');
  const leaked = cleanQcow2('leaked.qcow2');
  leakOne(leaked);
  const corrupt = cleanQcow2('corrupt.qcow2');
  zeroDataRefcount(corrupt);

  const page = await openPage(env);
  for (const [file, exit] of [[clean, 0], [leaked, 3], [corrupt, 2]]) {
    const q = qemuCheck(file);
    assert.ok(q.json, `qemu-img check printed no JSON: ${q.stderr}`);
    assert.equal(q.status, exit, `qemu-img check's status on ${file}`);
    const [corruptions, leaks] = [count(q.json, 'corruptions'), count(q.json, 'leaks')];
    assert.equal(leaks, exit === 3 ? 1 : 0, 'the one leaked cluster');
    assert.equal(corruptions > 0, exit === 2);

    const api = await apiCheck(page, [file]);
    assert.deepEqual([api['exit-code'], count(api, 'corruptions'), count(api, 'leaks'), count(api, 'check-errors')],
      [exit, corruptions, leaks, 0], `check() on ${file}: ${JSON.stringify(api)}`);
    assert.equal(api['image-end-offset'], q.json['image-end-offset'], 'the image end, as qemu-img finds it');
    sameAsCli(t, api, [file]);

    const shown = await pageCheck(page, [file]);
    assert.deepEqual([shown.exit, shown.corruptions, shown.leaks, shown.errors], [exit, corruptions, leaks, 0]);
    assert.deepEqual(shown.problems, api.problems, 'the page lists the problem lines');
    if (exit === 0) {
      assert.match(shown.text, /^No errors were found\. qemu-img check would exit with 0: the image is clean/);
      assert.equal(shown.problems.length, 0);
    } else if (exit === 3) {
      assert.match(shown.text, /^Found 1 leaked cluster\. qemu-img check would exit with 3: only leaked clusters/);
      assert.ok(shown.problems.length > 0);
    } else {
      assert.match(shown.text, new RegExp(`^Found ${corruptions} corruptions?\\. qemu-img check would exit with 2: the image is corrupt`));
      assert.ok(shown.problems.length > 0);
    }
  }
  await finish(page);
});

test('a gzipped qcow2 with a leak: checked through a scratch copy in OPFS, removed afterwards', async (t) => {
  const leaked = cleanQcow2('packed.qcow2');
  leakOne(leaked);
  execFileSync('gzip', ['-k', leaked]);
  const gz = `${leaked}.gz`;
  const page = await openPage(env);
  const api = await apiCheck(page, [gz]);
  assert.equal(api['exit-code'], 3, JSON.stringify(api));
  assert.equal(api.disks?.length, 1);
  assert.equal(api.disks[0].format, 'qcow2');
  assert.equal(api.disks[0].leaks, 1);
  assert.equal(api.disks[0]['image-end-offset'], qemuCheck(leaked).json['image-end-offset']);
  sameAsCli(t, api, [gz]);
  assert.deepEqual((await opfsEntries(page)).filter((n) => n.endsWith('.vmdisk-scratch')), [], 'the scratch copy is gone');
  await finish(page);
});

test('an OVA whose disk changed after its manifest: a corruption; verify() re-judges the clouds like the CLI', async (t) => {
  const raw = env.path('ova-src.raw');
  writeFileSync(raw, Buffer.alloc(8 * MiB));
  qemuIo(raw, 'raw', 'write -P 0x3c 0 2M', 'write -P 0xc3 5M 1M');
  const vmdk = env.path('disk1.vmdk');
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk);
  const ovf = env.path('vm.ovf');
  writeFileSync(ovf, ovftoolOvf('vm', [{ href: 'disk1.vmdk', mib: 8, format: STREAM }]));
  const good = env.path('good.ova');
  ova(good, [ovf, vmdk]);
  const bad = env.path('bad.ova');
  const at = ova(bad, [ovf, vmdk]);
  // One byte of the VMDK header's padding (bytes 79..511, read by nobody): the tar and the VMDK
  // still read, only the manifest's digest no longer matches.
  const buf = readFileSync(bad);
  buf[at['disk1.vmdk'] + 400] ^= 0x01;
  writeFileSync(bad, buf);

  const page = await openPage(env);
  const ok = await apiCheck(page, [good]);
  assert.equal(ok['exit-code'], 0, JSON.stringify(ok));
  assert.equal(ok.disks?.length, 1, 'the OVA\'s disk is checked on its own');
  sameAsCli(t, ok, [good]);

  const api = await apiCheck(page, [bad]);
  assert.equal(api['exit-code'], 2, JSON.stringify(api));
  assert.ok(count(api, 'corruptions') >= 1);
  assert.ok(api.problems.some((p) => /disk1\.vmdk/.test(p) && /digest|manifest|SHA/i.test(p)), api.problems.join('\n'));
  sameAsCli(t, api, [bad]);
  const shown = await pageCheck(page, [bad]);
  assert.equal(shown.exit, 2);
  assert.equal(shown.corruptions, count(api, 'corruptions'));
  assert.match(shown.text, /qemu-img check would exit with 2: the image is corrupt/);

  // verify() returns the findings and the verdicts judged again with them, as `vmdisk info`
  // (which verifies a package) judges them.
  const verified = await page.evaluate(async () => {
    const found = await window.vmdisk.verify(document.getElementById('test-files').files);
    return { findings: [...found], clouds: found.clouds };
  });
  assert.ok(verified.findings.some((f) => f.code === 'digest-mismatch'));
  const cli = cliInfo([bad]);
  if (cli) assert.deepEqual(verified.clouds, cli.clouds);
  // The page redraws them after its integrity check.
  await page.click('#verify');
  await page.waitForSelector('#verify-status[data-state=done]', { timeout: 60_000, state: 'attached' });
  const tiles = await page.locator('#clouds li[data-target]').evaluateAll((ls) => ls.map((l) => [l.dataset.target, l.dataset.accepted]));
  assert.deepEqual(tiles, verified.clouds.map((v) => [v.target, String(v.accepted)]));
  await finish(page);
});

test('cancelling a check of a large compressed qcow2 mid-way, then checking it again', async (t) => {
  // Random letters: zlib compresses them (qemu-img stores the clusters compressed) and
  // inflating them back takes real time. Small clusters: the check reports progress once an L2
  // table is walked, and a 4 KiB cluster's L2 table maps 2 MiB.
  const raw = env.path('letters.raw');
  const fd = openSync(raw, 'w');
  for (let i = 0; i < 4; i++) {
    const chunk = randomBytes(16 * MiB);
    for (let k = 0; k < chunk.length; k++) chunk[k] = 97 + (chunk[k] % 26);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  const big = env.path('big.qcow2');
  qemuImg('convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'cluster_size=4096', raw, big);
  const q = qemuCheck(big);
  assert.equal(q.status, 0);
  assert.ok(q.json['compressed-clusters'] > 15_000, JSON.stringify(q.json));

  const page = await openPage(env);
  await pick(page, big);
  await page.click('#check');
  // Wait for the first progress report, then cancel before the end.
  await page.waitForFunction(() => {
    const p = document.getElementById('check-progress');
    return p.hasAttribute('value') && p.value > 0;
  }, null, { timeout: 60_000, polling: 20 });
  const before = await page.evaluate(() => document.getElementById('check-progress').position);
  assert.ok(before < 0.9, `the check was nearly done (${before}) when it was cancelled`);
  await page.click('#check-cancel');
  await page.waitForSelector('#check-box:is([data-state=cancelled], [data-state=done], [data-state=failed])', { timeout: 60_000, state: 'attached' });
  assert.equal(await page.getAttribute('#check-box', 'data-state'), 'cancelled');
  assert.match(await page.textContent('#check-status'), /Cancelled/);
  assert.equal(await page.isHidden('#check-result'), true, 'nothing is concluded from a cancelled check');
  assert.equal(await page.isEnabled('#check'), true);

  // It runs again, to its end.
  await page.click('#check');
  await page.waitForSelector('#check-box:is([data-state=done], [data-state=failed])', { timeout: 180_000, state: 'attached' });
  assert.equal(await page.getAttribute('#check-box', 'data-state'), 'done', await page.textContent('#error'));
  assert.equal(await page.getAttribute('#check-summary', 'data-exit-code'), '0');
  assert.match(await page.textContent('#check-summary'), /No errors were found/);
  t.diagnostic(`the whole check of ${q.json['compressed-clusters']} compressed clusters: ${await page.textContent('#check-status')}`);
  // The API cancels through its signal too.
  await pageFiles(page, [big], 'big-files');
  const name = await page.evaluate(async () => {
    const controller = new AbortController();
    let reports = 0;
    const run = window.vmdisk.check(document.getElementById('big-files').files, {
      signal: controller.signal,
      onProgress: ({ done, total }) => { if (done > 0 && done < total && ++reports === 1) controller.abort(); },
    });
    return run.then(() => 'resolved', (e) => e.name);
  });
  assert.equal(name, 'AbortError');
  await finish(page);
});

/** A raw disk with a protective MBR and a GPT header (as tests/clouds.rs builds it). */
function gptDisk(file) {
  const d = Buffer.alloc(MiB);
  Buffer.from([0, 0, 2, 0, 0xee, 0xff, 0xff, 0xff]).copy(d, 446);
  d.writeUInt32LE(1, 454);
  d.writeUInt32LE(d.length / 512 - 1, 458);
  d[510] = 0x55;
  d[511] = 0xaa;
  Buffer.from('EFI PART').copy(d, 512);
  writeFileSync(file, d);
}

test('the guest partition table of a qcow2 made from a GPT disk, and the verdicts that read it', async () => {
  gptDisk(env.path('gpt.raw'));
  writeFileSync(env.path('blank.raw'), Buffer.alloc(MiB));
  const gpt = env.path('gpt.qcow2');
  const blank = env.path('blank.qcow2');
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', env.path('gpt.raw'), gpt);
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', env.path('blank.raw'), blank);

  const page = await openPage(env);
  const report = await pick(page, gpt);
  assert.equal(report.guest?.['partition-table'], 'gpt', JSON.stringify(report.guest));
  assert.equal(await page.isVisible('#guest-box'), true);
  assert.equal(await page.getAttribute('#guest-table', 'data-table'), 'gpt');
  assert.match(await page.textContent('#guest-table'), /^GPT partition table/);
  assert.match(await page.textContent('#r-format-note'), /GPT partition table/);
  const aws = report.clouds.find((v) => v.target === 'aws');
  assert.deepEqual(aws.reasons.map((r) => r.code), ['format-not-accepted'], 'a table is there: only the format is refused');
  assert.deepEqual(aws.reasons[0].convert, { format: 'raw', disk: null, output: 'gpt.raw', 'first-step': false });
  const button = page.locator('#cloud-reasons [data-target=aws] [data-action=fix-convert]');
  assert.equal(await button.getAttribute('data-output'), 'gpt.raw');
  assert.equal(await button.textContent(), 'Convert to raw here');
  const gce = report.clouds.find((v) => v.target === 'gce');
  assert.equal(gce.reasons[0].convert?.['first-step'], true, 'GCE goes on with tar');
  const cli = cliInfo([gpt]);
  if (cli) {
    assert.deepEqual(report.guest, cli.guest);
    assert.deepEqual(report.clouds, cli.clouds);
  }

  const none = await pick(page, blank);
  assert.equal(none.guest?.['partition-table'], undefined, 'a blank guest holds no table');
  assert.ok(none.clouds.find((v) => v.target === 'aws').reasons.some((r) => r.code === 'no-partition-table'));
  assert.match(await page.textContent('#guest-table'), /^No partition table/);
  const cliBlank = cliInfo([blank]);
  if (cliBlank) assert.deepEqual(none.clouds, cliBlank.clouds);
  await finish(page);
});

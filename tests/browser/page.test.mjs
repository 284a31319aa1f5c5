// End-to-end tests of the page in headless Chromium: pick files, read the report, convert,
// download, and check every result with qemu-img. Run: node --test tests/browser/ (./dev test sets
// each test's time limit with --test-timeout)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import {
  MiB, check, cliInfo, compare, convertOnPage, makeRaw, opfsEntries, openPage, pick, qemuImg, qemuIo, setup,
} from './lib.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });


/** Close a page after checking it stayed on 127.0.0.1 and threw nothing. */
async function finish(page) {
  await shot(page);
  assert.deepEqual(page.outside, [], 'the page made requests outside 127.0.0.1');
  assert.deepEqual(page.errors, [], 'uncaught errors in the page');
  await page.context().close();
}

// SCREENSHOTS=dir keeps a full-page screenshot of every test's last state.
let shots = 0;
async function shot(page) {
  if (process.env.SCREENSHOTS) await page.screenshot({ path: `${process.env.SCREENSHOTS}/${String(++shots).padStart(2, '0')}.png`, fullPage: true });
}

/** Hand files to page code through an input of our own (not the page's), for API-level tests. */
async function pageFiles(page, paths) {
  await page.evaluate(() => {
    const input = Object.assign(document.createElement('input'), { type: 'file', multiple: true, id: 'test-files', hidden: true });
    document.body.append(input);
  });
  await page.setInputFiles('#test-files', paths);
}

test('qcow2 -> raw: report, then a download identical to the source', async () => {
  const raw = makeRaw(env.path('src.img'), 64 * MiB);
  const src = env.path('src.qcow2');
  qemuImg('convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, src);
  const page = await openPage(env);
  const report = await pick(page, src);
  assert.equal(report.format, 'qcow2');
  assert.equal(report['virtual-size'], 64 * MiB);
  assert.equal(report.safety.safe, true);
  assert.equal(report.convertible, true);
  assert.deepEqual(report.files.map((f) => [f.name, f.role]), [['src.qcow2', 'image']]);
  assert.equal(await page.getAttribute('#verdict', 'data-safe'), 'true');
  assert.match(await page.textContent('#verdict'), /Safe/);
  assert.match(await page.textContent('#r-virtual'), /64 MiB/);
  assert.match(await page.textContent('#r-virtual-bytes'), /67,108,864 bytes/);

  const out = await convertOnPage(page, env.path('out.raw'), { format: 'raw' });
  assert.equal(out.suggested, 'src.raw');
  assert.match(out.status, /Done/);
  assert.equal(compare(src, 'qcow2', out.path, 'raw').status, 0, 'qemu-img compare: the raw output differs');
  await finish(page);
});

test('raw -> qcow2, uncompressed, zlib and zstd: qemu-img check and compare pass', async () => {
  const src = makeRaw(env.path('plain.raw'), 48 * MiB, { seed: 2 });
  const page = await openPage(env);
  const report = await pick(page, src);
  assert.equal(report.format, 'raw');
  assert.equal(report['virtual-size'], 48 * MiB);
  assert.equal(report.safety.safe, true);

  for (const compression of ['', 'zlib', 'zstd']) {
    const out = await convertOnPage(page, env.path(`plain-${compression || 'none'}.qcow2`), { format: 'qcow2', compression });
    assert.equal(out.suggested, 'plain.qcow2');
    const c = check(out.path);
    assert.equal(c.status, 0, `qemu-img check (${compression || 'none'}): ${c.stderr}`);
    assert.equal(compare(src, 'raw', out.path, 'qcow2').status, 0, `qemu-img compare (${compression || 'none'})`);
    const info = JSON.parse(qemuImg('info', '--output=json', '-f', 'qcow2', out.path));
    if (compression) {
      assert.ok(c.json['compressed-clusters'] > 0, `${compression}: no compressed clusters`);
      assert.equal(info['format-specific'].data['compression-type'], compression);
    } else {
      assert.equal(c.json['compressed-clusters'] ?? 0, 0);
    }
  }
  // Each new conversion releases the previous output: at most the last one's spill file (what
  // was produced: compressed clusters past what is kept in memory) stays in OPFS.
  const left = await opfsEntries(page);
  assert.ok(left.length <= 1 && left.every((n) => n === 'plain.qcow2'), `OPFS holds ${left}`);
  await finish(page);
});

test('the page reports what `vmdisk info --json` reports', async (t) => {
  const base = env.path('info-base.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', base, String(32 * MiB));
  qemuImg('snapshot', '-c', 'first', base);
  const page = await openPage(env);
  const report = await pick(page, base);
  await pageFiles(page, [base]);
  const api = await page.evaluate(() => window.vmdisk.inspect(Array.from(document.getElementById('test-files').files)));
  // The page shows exactly what the API returns.
  assert.deepEqual(report, JSON.parse(JSON.stringify(api)));
  const cli = cliInfo([base]);
  if (!cli) t.diagnostic('no vmdisk CLI build found: the comparison with the CLI was skipped');
  else {
    // actual-size is allocated space natively (st_blocks) and the file length in a browser.
    delete cli['actual-size'];
    delete report['actual-size'];
    assert.deepEqual(report, cli);
  }
  // Snapshots show as a table inside the format details.
  assert.match(await page.textContent('#details'), /first/);
  await finish(page);
});

test('an overlay picked with its backing file converts flattened', async () => {
  const base = env.path('base.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', base, String(32 * MiB));
  qemuIo(base, 'qcow2', 'write -P 0x11 0 8M', 'write -P 0x22 16M 4M');
  const overlay = env.path('overlay.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', overlay);
  qemuIo(overlay, 'qcow2', 'write -P 0x33 4M 8M', 'write -z 17M 1M');
  const page = await openPage(env);
  const report = await pick(page, [base, overlay]); // order does not matter
  assert.equal(report.format, 'qcow2');
  assert.equal(report.convertible, true);
  assert.deepEqual(Object.fromEntries(report.files.map((f) => [f.name, f.role])), { 'overlay.qcow2': 'image', 'base.qcow2': 'backing' });
  const out = await convertOnPage(page, env.path('flat.raw'), { format: 'raw' });
  assert.equal(out.suggested, 'overlay.raw');
  assert.equal(compare(overlay, 'qcow2', out.path, 'raw').status, 0, 'the flattened disk differs from overlay+backing');
  await finish(page);
});

test('an overlay without its backing file is unsafe and cannot be converted', async () => {
  const base = env.path('lonely-base.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', base, String(16 * MiB));
  const overlay = env.path('lonely.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'lonely-base.qcow2', '-F', 'qcow2', overlay);
  const page = await openPage(env);
  const report = await pick(page, overlay);
  assert.equal(report.safety.safe, false);
  const f = report.safety.findings.find((x) => x.code === 'backing-file');
  assert.ok(f, 'no backing-file finding');
  assert.equal(f.severity, 'critical');
  assert.equal(await page.getAttribute('#verdict', 'data-safe'), 'false');
  assert.match(await page.textContent('#verdict'), /Unsafe/);
  // The finding is explained in words, with the engine's message.
  const li = page.locator('#findings li[data-code="backing-file"]');
  assert.match(await li.textContent(), /backing file/i);
  assert.match(await li.textContent(), /lonely-base\.qcow2/);
  assert.equal(await page.isDisabled('#convert'), true);
  assert.equal(await page.isVisible('#convert-note'), true);
  // "Add files…" completes the set: the overlay becomes convertible.
  await page.setInputFiles('#add-files', base);
  const both = JSON.parse(await page.waitForSelector('#report[data-json]', { state: 'attached' }).then((h) => h.getAttribute('data-json')));
  assert.equal(both.convertible, true);
  assert.deepEqual(both.files.map((x) => x.role).sort(), ['backing', 'image']);
  assert.equal(await page.isEnabled('#convert'), true);
  assert.match(await page.textContent('#picked-list'), /lonely\.qcow2[\s\S]*lonely-base\.qcow2/);
  await finish(page);
});

test('malformed files show a readable error and the page keeps working', async () => {
  const empty = env.path('empty.img');
  writeFileSync(empty, '');
  const good = env.path('good.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', good, String(8 * MiB));
  const cut = env.path('cut.qcow2');
  writeFileSync(cut, readFileSync(good).subarray(0, 50)); // ends inside the header
  const page = await openPage(env);
  for (const [file, name] of [[empty, 'empty.img'], [cut, 'cut.qcow2']]) {
    const text = await pick(page, file, { error: true });
    assert.ok(text.includes(name), `the error names the file: ${text}`);
    assert.doesNotMatch(text, /undefined|\[object|RuntimeError|unreachable/);
    assert.ok(text.length > 30 && text.length < 600, `a readable message: ${text}`);
    assert.equal(await page.getAttribute('#report', 'data-json'), null);
    assert.equal(await page.isVisible('#report'), false);
  }
  assert.match(await page.textContent('#error'), /header|truncated|short/i);
  // A good file afterwards clears the error and shows its report.
  const report = await pick(page, good);
  assert.equal(report.format, 'qcow2');
  assert.equal(await page.isVisible('#error'), false);
  await finish(page);
});

test('cancel half-way: the page shows cancelled and nothing is left in OPFS', async () => {
  // 4 GiB with data scattered over it: long enough to cancel in the middle.
  const GiB = 1024 * MiB;
  const big = makeRaw(env.path('big.raw'), 4 * GiB, {
    chunks: Array.from({ length: 8 }, (_, i) => [i * 512 * MiB + 64 * MiB, 8 * MiB]),
  });
  const page = await openPage(env);
  await pick(page, big);
  await page.selectOption('#format', 'qcow2');
  await page.click('#convert');
  assert.equal(await page.isVisible('#cancel'), true);
  await page.waitForFunction(() => {
    const p = document.getElementById('progress');
    return p.hasAttribute('value') && p.value > 0 && p.value < p.max * 0.8;
  }, null, { timeout: 60_000, polling: 50 });
  await page.click('#cancel');
  await page.waitForSelector('#convert-box[data-state="cancelled"]', { timeout: 30_000, state: 'attached' });
  assert.match(await page.textContent('#convert-status'), /Cancelled/);
  assert.equal(await page.isVisible('#error'), false, 'a cancel is not an error');
  assert.equal(await page.isVisible('#download'), false);
  assert.deepEqual(await opfsEntries(page), [], 'OPFS entries left after cancel');
  // The page can convert again after a cancel.
  assert.equal(await page.isEnabled('#convert'), true);
  await finish(page);
});

test('API: an aborted convert() rejects with AbortError and leaves nothing', async () => {
  const big = makeRaw(env.path('api-big.raw'), 2048 * MiB, { chunks: [[0, 4 * MiB], [1024 * MiB, 4 * MiB]] });
  const page = await openPage(env);
  await pageFiles(page, [big]);
  const outcome = await page.evaluate(async () => {
    const files = Array.from(document.getElementById('test-files').files);
    const controller = new AbortController();
    let progress = 0;
    try {
      await window.vmdisk.convert(files, {
        format: 'qcow2',
        compression: null,
        signal: controller.signal,
        onProgress: ({ done, total }) => { progress++; if (done > 0 && done < total) controller.abort(); },
      });
      return { resolved: true, progress };
    } catch (e) {
      return { name: e.name, message: String(e.message), progress };
    }
  });
  assert.equal(outcome.name, 'AbortError', JSON.stringify(outcome));
  assert.ok(outcome.progress > 0);
  assert.deepEqual(await opfsEntries(page), []);
  // An already aborted signal rejects at once.
  const early = await page.evaluate(async () => {
    const files = Array.from(document.getElementById('test-files').files);
    try {
      await window.vmdisk.convert(files, { format: 'raw', compression: null, signal: AbortSignal.abort() });
      return 'resolved';
    } catch (e) { return e.name; }
  });
  assert.equal(early, 'AbortError');
  assert.deepEqual(await opfsEntries(page), []);
  await finish(page);
});

test('files dropped on the page are inspected', async () => {
  const img = env.path('dropped.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', img, String(4 * MiB));
  const bytes = [...readFileSync(img)];
  const page = await openPage(env);
  const dataTransfer = await page.evaluateHandle((b) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(b)], 'dropped.qcow2'));
    return dt;
  }, bytes);
  await page.dispatchEvent('#drop', 'dragenter', { dataTransfer });
  await page.dispatchEvent('#drop', 'dragover', { dataTransfer });
  await page.dispatchEvent('#drop', 'drop', { dataTransfer });
  const report = JSON.parse(await page.waitForSelector('#report[data-json]', { state: 'attached' }).then((h) => h.getAttribute('data-json')));
  assert.equal(report.format, 'qcow2');
  assert.equal(report['virtual-size'], 4 * MiB);
  assert.match(await page.textContent('#picked-list'), /dropped\.qcow2/);
  await finish(page);
});

test('accessible controls and a narrow layout without sideways scrolling', async () => {
  const img = env.path('narrow.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', img, String(4 * MiB));
  qemuImg('snapshot', '-c', 'a-snapshot-with-a-rather-long-name', img);
  const page = await openPage(env, { viewport: { width: 360, height: 740 } });
  await pick(page, img);
  const unlabeled = await page.evaluate(() => [...document.querySelectorAll('input, select, button, progress')]
    .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
    .map((e) => e.id || e.outerHTML.slice(0, 60)));
  assert.deepEqual(unlabeled, []);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a 360px screen`);
  // Keyboard: the file input is reachable with Tab.
  const reached = [];
  for (let i = 0; i < 4; i++) {
    await page.keyboard.press('Tab');
    reached.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName));
  }
  assert.ok(reached.includes('files'), `Tab order: ${reached}`);
  await finish(page);
});

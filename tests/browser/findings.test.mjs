// Every finding code the engine can emit has a title and a plain-words explanation: the engine's
// own table (crate/src/finding_code.rs, `findingCodes()` in the JS API). A finding's code is a
// `FindingCode`, so Rust's types make every emitted code one of that table; this test checks
// that the table reaches the JS API whole and that the page shows its words above the message.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MiB, openPage, pick, qemuImg, setup } from './lib.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.close(); });

// Codes the engine is known to emit (from drivers, packages, certificates, OVF checks).
const KNOWN = ['backing-file', 'truncated', 'corrupt', 'digest-mismatch', 'manifest', 'bad-signature', 'certificate-expired',
  'certificate-not-yet-valid', 'signed', 'weak-digest', 'weak-key', 'bad-certificate-signature', 'unparsable-cert-file',
  'unparsable-certificate', 'unsupported-digest', 'unsupported-key', 'signed-file-mismatch', 'unsafe-member-name', 'ova-layout',
  'missing-member', 'capacity-mismatch', 'format-label', 'name-mismatch', 'not-a-disk', 'compressed-disk', 'ovf-dangling-ref',
  'ovf-size-overflow', 'ovf-bad-value', 'ovf-problems-truncated'];

test('every finding code is explained, and the page shows the explanation', async () => {
  const page = await openPage(env);
  const codes = await page.evaluate(() => window.vmdisk.findingCodes());
  assert.ok(codes.length >= 50, `only ${codes.length} codes`);
  assert.equal(new Set(codes.map((c) => c.code)).size, codes.length, 'a code listed twice');
  for (const c of codes) {
    assert.match(c.code, /^[a-z0-9]+(-[a-z0-9]+)*$/, `code ${c.code}`);
    assert.ok(c.title.length > 3, `no title for ${c.code}`);
    assert.ok(c.explanation.length > 20, `no explanation for ${c.code}`);
  }
  const listed = new Set(codes.map((c) => c.code));
  assert.deepEqual(KNOWN.filter((c) => !listed.has(c)), [], 'codes the engine emits that the table lacks');

  const base = env.path('explained-base.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', base, String(16 * MiB));
  const overlay = env.path('explained.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'explained-base.qcow2', '-F', 'qcow2', overlay);
  const report = await pick(page, overlay);
  const shown = report.safety.findings.map((f) => f.code);
  assert.ok(shown.includes('backing-file'), `findings: ${shown}`);
  for (const code of shown) {
    const entry = codes.find((c) => c.code === code);
    assert.ok(entry, `the report carries ${code}, which the table lacks`);
    const li = page.locator(`#findings li[data-code="${code}"]`).first();
    assert.equal((await li.locator('.finding-title').textContent()).trim(), `${entry.title} ${code}`);
    assert.equal(await li.locator('.finding-why').textContent(), entry.explanation);
  }
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

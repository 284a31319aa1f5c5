// A package on the page (OVA/OVF, UEC and GCE tarballs, compressed images): one card per disk
// (per UEC member) with what the package says of it, its own findings and its own conversion;
// "Convert all disks" one after another; the integrity check (verify()) with its progress.
// render.js owns the report, the findings list and the verdict; app.js hands its helpers in.
//
// Element ids and attributes tests rely on: disks-box, disks, .disk-card[data-index=N]
// (data-role, data-format, data-convertible, data-state idle/running/done/failed/cancelled),
// [data-action=convert|cancel|download] inside a card, [data-flag=capacity], convert-all,
// convert-all-cancel, convert-all-status, uec-register, vms, verify, verify-cancel,
// verify-progress, verify-status (data-state idle/running/done/failed/cancelled, data-result
// ok/bad/none once done). After the check the cloud verdicts are drawn again from what it found.

const ROLE_WORDS = {
  disk: 'disk',
  ami: 'machine image (AMI)',
  aki: 'kernel (AKI)',
  ari: 'ramdisk (ARI)',
  other: 'other file',
};

const INTRO = {
  ova: 'An OVA: an archive of an OVF descriptor, its disks and usually a manifest of their digests. vmdisk reads every disk in place, without unpacking.',
  ovf: 'An unpacked OVF package: the descriptor with the files it names.',
  uec: 'A UEC tarball: a machine image (AMI) that boots with a separate kernel (AKI) and usually a ramdisk (ARI). Only the machine image is a disk; the kernel and ramdisk are uploaded as they are.',
  gce: 'A Google Compute Engine image tarball: a raw disk (disk.raw) inside a gzip\'d tar.',
  compressed: 'A compressed disk image. vmdisk decompresses it as it reads; a disk that must be read at random places (qcow2, VHD, ...) is decompressed into temporary browser storage first when it is converted, and that copy is removed afterwards.',
};

export function createPackages(ctx) {
  const { $, el, human, bytes, duration, state, engine, errorText, showError, clearError, convertHint,
    renderFinding, renderObject, renderSafety, drawProgress, frameThrottle, convertOptions, syncBusy, FORMATS,
    downloads, guestTable, redrawClouds } = ctx;

  const view = {
    report: null,
    cards: [], // per disk: { node, result, url }
    job: null, // the card conversion running: { controller, index }
    all: null, // "Convert all disks" running: { stopped }
    verify: null, // the integrity check running: { controller }
    seq: 0, // bumps on every reset: late answers are dropped
  };

  const converting = () => !!(view.job || view.all);
  const busy = () => !!(state.run || state.task || converting() || view.verify);

  // -------------------------------------------------------------------------------------------
  // Rendering.

  function sized(n) {
    return el('span', {}, human(n), el('span', { class: 'muted', text: ` (${bytes(n)})` }));
  }

  /** A UEC member's glance formats, by the disk's index (members with a role are its disks). */
  function glanceOf(r, i) {
    const members = (r['format-specific']?.members || []).filter((m) => m && m.role);
    return members[i]?.glance || null;
  }

  function facts(r, d, i) {
    const vs = d['virtual-size'];
    const rows = [
      ['Role', ROLE_WORDS[d.role] || d.role],
      ['Format', d.format ? `${d.format}${FORMATS[d.format] ? ` (${FORMATS[d.format]})` : ''}` : 'not readable'],
      ['Virtual size', vs === null || vs === undefined ? el('span', { class: 'muted', text: '—' }) : sized(vs)],
    ];
    if (d.compression) rows.push(['Stored', `${d.compression}-compressed in the package`]);
    if (d.vm) rows.push(['Virtual machine', d.vm]);
    if (d.controller) rows.push(['Attached to', d.controller]);
    if (d.capacity !== undefined && d.capacity !== null) {
      const differs = vs !== null && vs !== undefined && Number(d.capacity) !== Number(vs);
      rows.push(['Capacity in the descriptor', differs
        ? el('span', { class: 'flag', 'data-flag': 'capacity' }, sized(d.capacity),
          el('span', { class: 'flag-why', text: ` disagrees with the disk's own size, ${human(vs)}; vmdisk uses the disk's.` }))
        : sized(d.capacity)]);
    }
    if (d.guest) rows.push(['Guest partition table', guestTable(d.guest)]);
    const glance = glanceOf(r, i);
    if (glance) {
      rows.push(['Upload with', el('code', { class: 'glance', text: `disk_format=${glance.disk_format} container_format=${glance.container_format}` })]);
    }
    return el('dl', { class: 'disk-facts' }, rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', {}, v)]));
  }

  function notConvertible(d) {
    if (d.role === 'aki' || d.role === 'ari') return `Not converted: a ${d.role === 'aki' ? 'kernel' : 'ramdisk'} is not a disk, and is uploaded as it is.`;
    if (d.error) return 'Cannot be converted: it cannot be read (above).';
    if (d.role === 'other') return 'Not a disk: nothing to convert.';
    return 'vmdisk cannot convert this disk: see its findings.';
  }

  function card(r, d, i) {
    const format = convertOptions().format;
    const node = el('li', {
      class: 'disk-card', 'data-index': String(i), 'data-role': d.role, 'data-format': d.format || '',
      'data-convertible': String(!!d.convertible), 'data-state': 'idle', 'aria-labelledby': `disk-${i}-name`,
    },
    el('div', { class: 'disk-head' },
      el('span', { class: 'disk-num', text: `Disk ${i + 1}` }),
      el('h3', { class: 'disk-name', id: `disk-${i}-name`, text: d.name }),
      el('span', { class: `role role-${d.role}`, text: ROLE_WORDS[d.role] || d.role })),
    facts(r, d, i),
    d.error ? el('p', { class: 'disk-error', 'data-part': 'error' }, el('strong', { text: 'Cannot be read: ' }), String(d.error).replace(/\.?$/, '.'),
      r.format === 'ovf' ? ' If that file is on this computer, add it with "Add files…".' : '') : null,
    d.findings?.length ? el('ul', { class: 'findings disk-findings', 'aria-label': `Findings for ${d.name}` }, d.findings.map(renderFinding)) : null,
    d.convertible
      ? el('div', { class: 'disk-actions' },
        el('button', { type: 'button', class: 'button primary small', 'data-action': 'convert', 'aria-describedby': `disk-${i}-name` }, `Convert to ${format}`),
        el('button', { type: 'button', class: 'button danger small', 'data-action': 'cancel', hidden: true }, 'Cancel'))
      : el('p', { class: 'disk-note muted', 'data-part': 'not-convertible', text: notConvertible(d) }),
    d.convertible
      ? el('div', { class: 'disk-progress', 'data-part': 'progress-box' },
        el('progress', { 'data-part': 'progress', max: '1', value: '0', 'aria-label': `Conversion progress of ${d.name}` }),
        el('p', { class: 'status', 'data-part': 'status', role: 'status', 'aria-live': 'polite' }))
      : null,
    el('p', { class: 'result', 'data-part': 'result', hidden: true }),
    d['format-specific'] && Object.keys(d['format-specific']).length
      ? el('details', { class: 'disk-details' }, el('summary', { text: 'Format details' }), renderObject(d['format-specific']))
      : null);
    node.querySelector('[data-action=convert]')?.addEventListener('click', () => convertOne(i));
    node.querySelector('[data-action=cancel]')?.addEventListener('click', () => cancelCard(i));
    return node;
  }

  function vmList(r) {
    const systems = r['format-specific']?.['virtual-systems'];
    if (!Array.isArray(systems) || !systems.length) return null;
    return el('div', { class: 'vms' },
      el('h3', { text: systems.length === 1 ? 'Virtual machine' : 'Virtual machines' }),
      el('ul', { id: 'vms', class: 'vm-list' }, systems.map((vs) => {
        const os = vs.os?.description || vs.os?.['os-type'];
        const parts = [
          os,
          vs.cpus ? `${vs.cpus} CPU${vs.cpus === 1 ? '' : 's'}` : null,
          vs.memory ? `${human(vs.memory)} memory` : null,
          Array.isArray(vs.disks) ? `${vs.disks.filter((a) => a.target === 'disk').length} disk(s)` : null,
          Array.isArray(vs.nics) && vs.nics.length ? `network: ${vs.nics.map((n) => [n.kind, n.connection && `on ${n.connection}`].filter(Boolean).join(' ')).join(', ')}` : null,
        ].filter(Boolean);
        return el('li', { class: 'vm' }, el('strong', { text: vs.name || vs.id || 'unnamed' }), parts.length ? ` — ${parts.join(', ')}` : '');
      })));
  }

  function registerSteps(r) {
    const steps = r['format-specific']?.register;
    if (r.format !== 'uec' || !Array.isArray(steps) || !steps.length) return null;
    return el('div', { id: 'uec-register', class: 'register' },
      el('h3', { text: 'Uploading to OpenStack (glance)' }),
      el('p', { class: 'muted', text: 'Upload the files separately, in this order, then boot the machine image:' }),
      el('ol', { class: 'register-steps' }, steps.map((s) => el('li', { text: s }))));
  }

  function render(r) {
    reset();
    if (!Array.isArray(r.disks) || !r.disks.length) return; // not a package
    view.report = r;
    const box = $('disks-box');
    const convertible = r.disks.filter((d) => d.convertible).length;
    $('disks-intro').textContent = [INTRO[r.format] || '',
      r.disks.length === 1 ? '' : `It holds ${r.disks.length} ${r.format === 'uec' ? 'files' : 'disks'}; ${convertible || 'none'} of them can be converted.`,
      convertible ? 'Each converts with the format and compression chosen above.' : ''].filter(Boolean).join(' ');
    $('disks-extra').replaceChildren(...[vmList(r), registerSteps(r)].filter(Boolean));
    view.cards = r.disks.map((d, i) => ({ node: card(r, d, i), result: null, url: null }));
    $('disks').replaceChildren(...view.cards.map((c) => c.node));
    box.hidden = false;

    // Which disk the main Convert button takes, and the button for all of them.
    const which = defaultDisk(r);
    $('convert-which').hidden = which < 0;
    if (which >= 0) {
      $('convert-which').textContent = r.disks.length === 1
        ? `Convert takes the disk inside: ${r.disks[which].name}.`
        : `Convert takes disk ${which + 1}, ${r.disks[which].name}, the package's ${r.format === 'uec' ? 'machine image' : 'first disk'}. Every disk has its own Convert button under Disks below.`;
    }
    $('convert-all-box').hidden = convertible < 2;
    $('convert-all').textContent = `Convert all ${convertible} disks`;

    $('verify-box').hidden = false;
    setVerifyState('idle');
    sync();
  }

  /** The disk convert() takes by default: a UEC tarball's machine image, else the first disk. */
  function defaultDisk(r) {
    const ami = r.disks.findIndex((d) => d.role === 'ami');
    const i = ami >= 0 ? ami : r.disks.findIndex((d) => d.role === 'disk');
    return i >= 0 && r.disks[i].convertible ? i : -1;
  }

  /** Enable what can start now, and keep the Convert buttons' labels on the chosen format. */
  function sync() {
    const b = busy();
    const { format, compression } = convertOptions();
    for (const [i, c] of view.cards.entries()) {
      const go = c.node.querySelector('[data-action=convert]');
      if (!go) continue;
      const running = view.job?.index === i;
      go.hidden = running;
      go.disabled = b;
      go.textContent = `Convert to ${format}${compression ? ` (${compression})` : ''}`;
      const stop = c.node.querySelector('[data-action=cancel]');
      stop.hidden = !running;
    }
    $('convert-all').hidden = !!view.all;
    $('convert-all').disabled = b;
    $('convert-all-cancel').hidden = !view.all;
    $('verify').hidden = !!view.verify;
    $('verify').disabled = b;
    $('verify-cancel').hidden = !view.verify;
  }

  function releaseCard(c) {
    if (c.url) { URL.revokeObjectURL(c.url); downloads.delete(c.url); c.url = null; }
    if (c.result) {
      const old = c.result;
      c.result = null;
      state.api?.release?.(old).catch(() => {});
    }
  }

  /** Forget the package: stop what runs, let its outputs go. */
  function reset() {
    view.seq++;
    view.job?.controller.abort();
    view.verify?.controller.abort();
    if (view.all) view.all.stopped = true;
    view.job = null;
    view.all = null;
    view.verify = null;
    for (const c of view.cards) releaseCard(c);
    view.cards = [];
    view.report = null;
    $('disks').replaceChildren();
    $('disks-extra').replaceChildren();
    $('disks-box').hidden = true;
    $('verify-box').hidden = true;
    $('convert-which').hidden = true;
    $('convert-all-box').hidden = true;
    $('convert-all-status').textContent = '';
    setVerifyState('idle');
  }

  // -------------------------------------------------------------------------------------------
  // Converting one disk, or all of them.

  const part = (c, name) => c.node.querySelector(`[data-part=${name}]`);

  function setCardState(c, s) {
    c.node.dataset.state = s;
  }

  async function convertOne(i) {
    if (busy() || !view.cards[i]) return;
    clearError();
    await convertCard(i, convertOptions());
  }

  function cancelCard(i) {
    if (view.job?.index !== i) return;
    const stop = view.cards[i].node.querySelector('[data-action=cancel]');
    stop.disabled = true;
    part(view.cards[i], 'status').textContent = 'Cancelling…';
    if (view.all) view.all.stopped = true;
    view.job.controller.abort();
  }

  /** Convert disk `i`; resolves to "done", "cancelled", "failed" or "gone" (the set changed). */
  async function convertCard(i, { format, compression }) {
    const c = view.cards[i];
    const seq = view.seq;
    releaseCard(c);
    const controller = new AbortController();
    const job = { controller, index: i };
    view.job = job;
    setCardState(c, 'running');
    const progress = part(c, 'progress');
    const status = part(c, 'status');
    const result = part(c, 'result');
    result.hidden = true;
    result.replaceChildren();
    progress.removeAttribute('value');
    status.textContent = 'Starting…';
    c.node.querySelector('[data-action=cancel]').disabled = false;
    syncBusy();
    const t0 = performance.now();
    const live = () => view.job === job;
    const onProgress = frameThrottle((p) => drawProgress(progress, status, p, t0), live);
    try {
      const api = await engine();
      const out = await api.convert(state.files.slice(), { format, compression, disk: i, onProgress, signal: controller.signal });
      if (seq !== view.seq) { api.release(out).catch(() => {}); return 'gone'; }
      const secs = (performance.now() - t0) / 1000;
      c.result = out;
      c.url = URL.createObjectURL(out.file);
      downloads.set(c.url, out);
      progress.max = 1;
      progress.value = 1;
      setCardState(c, 'done');
      status.textContent = `Done in ${duration(secs)} (${human(Number(out.virtualSize) / Math.max(secs, 1e-3))}/s).`;
      result.replaceChildren(
        el('a', { class: 'button primary small', 'data-action': 'download', href: c.url, download: out.name }, `Download ${out.name}`),
        el('span', { class: 'result-note' }, `${out.format}${compression ? ` with ${compression}` : ''}, ${human(out.size)}`,
          el('span', { class: 'muted', text: ` (${bytes(out.size)})` })));
      result.hidden = false;
      return 'done';
    } catch (e) {
      if (seq !== view.seq) return 'gone';
      progress.max = 1;
      progress.value = 0;
      if (e && e.name === 'AbortError') {
        setCardState(c, 'cancelled');
        status.textContent = 'Cancelled. Nothing was kept.';
        return 'cancelled';
      }
      setCardState(c, 'failed');
      status.textContent = 'Failed.';
      showError(`Disk ${i + 1} (${view.report?.disks[i]?.name}) could not be converted`, errorText(e), convertHint(e));
      return 'failed';
    } finally {
      if (seq === view.seq && view.job === job) {
        view.job = null;
        syncBusy();
      }
    }
  }

  async function convertAll() {
    if (busy() || !view.report) return;
    clearError();
    const seq = view.seq;
    const options = convertOptions(); // one target for every disk, whatever the selectors do meanwhile
    const list = view.report.disks.map((d, i) => (d.convertible ? i : -1)).filter((i) => i >= 0);
    const run = { stopped: false };
    view.all = run;
    syncBusy();
    const status = $('convert-all-status');
    const outcomes = [];
    for (const [k, i] of list.entries()) {
      if (run.stopped || seq !== view.seq) break;
      status.textContent = `Converting disk ${i + 1} (${k + 1} of ${list.length})…`;
      outcomes.push(await convertCard(i, options));
    }
    if (seq !== view.seq) return;
    view.all = null;
    syncBusy();
    const done = outcomes.filter((o) => o === 'done').length;
    const failed = outcomes.filter((o) => o === 'failed').length;
    status.textContent = run.stopped
      ? `Stopped: ${done} of ${list.length} disks converted.`
      : `${done} of ${list.length} disks converted${failed ? `, ${failed} failed` : ''}. Download each from its card below.`;
    status.dataset.state = run.stopped ? 'cancelled' : failed ? 'failed' : 'done';
  }

  function stopAll() {
    if (!view.all) return;
    view.all.stopped = true;
    $('convert-all-status').textContent = 'Stopping…';
    view.job?.controller.abort();
  }

  // -------------------------------------------------------------------------------------------
  // The integrity check.

  function setVerifyState(s) {
    $('verify-box').dataset.state = s;
    $('verify-status').dataset.state = s;
    if (s === 'idle') {
      $('verify-status').replaceChildren();
      delete $('verify-status').dataset.result;
      $('verify-progress').max = 1;
      $('verify-progress').value = 0;
    }
  }

  /** What the check found, in a line: how many problems, or that everything matched. */
  function verdictLine(findings, secs) {
    const bad = findings.filter((f) => f.severity === 'critical');
    const took = ` Checked in ${duration(secs)}.`;
    if (bad.length) {
      const digests = bad.filter((f) => f.code === 'digest-mismatch').length;
      const streams = bad.length - digests;
      const parts = [
        digests ? `${digests} file${digests === 1 ? ' does' : 's do'} not match the manifest` : '',
        streams ? `${streams} compressed stream${streams === 1 ? ' is' : 's are'} damaged` : '',
      ].filter(Boolean).join(' and ');
      return ['bad', el('strong', { text: 'Integrity check failed: ' }), `${parts}. See the findings above.${took}`];
    }
    const passed = findings.filter((f) => f.code === 'manifest' && f.severity === 'info').map((f) => f.message);
    if (passed.length) {
      return ['ok', el('strong', { text: 'Everything matches. ' }), `${passed.map((m) => m.charAt(0).toUpperCase() + m.slice(1)).join('. ')}.${took}`];
    }
    return ['none', el('strong', { text: 'Nothing was checked: ' }), `this package carries no manifest of digests, and vmdisk found no checksums in it to check.${took}`];
  }

  async function startVerify() {
    if (busy() || !view.report) return;
    clearError();
    const seq = view.seq;
    const controller = new AbortController();
    const run = { controller };
    view.verify = run;
    state.checked = [];
    state.checkedAll = false;
    renderSafety();
    setVerifyState('running');
    const progress = $('verify-progress');
    const status = $('verify-status');
    progress.removeAttribute('value');
    status.textContent = 'Reading the package…';
    $('verify-cancel').disabled = false;
    syncBusy();
    const t0 = performance.now();
    const onProgress = frameThrottle((p) => drawProgress(progress, status, p, t0), () => view.verify === run);
    try {
      const api = await engine();
      const findings = await api.verify(state.files.slice(), { onProgress, signal: controller.signal });
      if (seq !== view.seq) return;
      state.checked = findings;
      state.checkedAll = true;
      renderSafety();
      // The verdicts judged again with what the check found.
      if (Array.isArray(findings.clouds)) redrawClouds(findings.clouds);
      progress.max = 1;
      progress.value = 1;
      const [result, ...line] = verdictLine(findings, (performance.now() - t0) / 1000);
      setVerifyState('done');
      status.dataset.result = result;
      status.replaceChildren(...line);
    } catch (e) {
      if (seq !== view.seq) return;
      progress.max = 1;
      progress.value = 0;
      if (e && e.name === 'AbortError') {
        setVerifyState('cancelled');
        status.textContent = 'Cancelled: the check did not finish, so nothing was concluded.';
      } else {
        setVerifyState('failed');
        status.textContent = 'The check could not run to its end.';
        showError('The integrity check failed', errorText(e));
      }
    } finally {
      if (seq === view.seq && view.verify === run) {
        view.verify = null;
        syncBusy();
      }
    }
  }

  function cancelVerify() {
    if (!view.verify) return;
    $('verify-cancel').disabled = true;
    $('verify-status').textContent = 'Cancelling…';
    view.verify.controller.abort();
  }

  $('convert-all').addEventListener('click', convertAll);
  $('convert-all-cancel').addEventListener('click', stopAll);
  $('verify').addEventListener('click', startVerify);
  $('verify-cancel').addEventListener('click', cancelVerify);

  return { render, reset, sync, busy, converting };
}

// The page: pick files, show the report, convert and download. All work happens in vmdisk.js
// (a Web Worker running the wasm engine); this file only drives the DOM.
//
// Element ids other tools rely on: files, report (data-json), format, compression, convert, cancel,
// progress, error. `window.vmdisk` exposes { inspect, convert } once the engine module has loaded.

const $ = (id) => document.getElementById(id);

const state = {
  api: null, // { inspect, convert } from vmdisk.js
  files: [], // File objects of the current image set
  report: null,
  seq: 0, // bumps on every new file set: late answers for an old set are dropped
  run: null, // { controller } while a conversion runs
  url: null, // object URL of the last result
  result: null, // the last conversion's result: its output stays in OPFS until released
};

// ---------------------------------------------------------------------------------------------
// Words for people.

const SEVERITY = {
  critical: { label: 'Critical', rank: 0 },
  warning: { label: 'Warning', rank: 1 },
  info: { label: 'Note', rank: 2 },
};

// One plain explanation per finding code (the engine's message follows it with the specifics).
const FINDINGS = {
  'backing-file': ['Depends on another file',
    'This image is an overlay: whatever it does not store itself is read from a second file, its backing file, found by a path written inside the image. A hypervisor or cloud would open that path on its own disk, which is how a crafted image reads files it should not. Choose the backing file together with the image to convert both into one standalone disk.'],
  'backing-format': ['Backing file is not what the image says',
    'The image declares one format for its backing file, but the file supplied is another. A hypervisor trusting the declaration would read the backing file differently.'],
  'data-file': ['Data kept in an external file',
    'The image keeps its data in a separate file named inside it. A hypervisor would open that file on the host, so the image can expose host files.'],
  'external-extent': ['Points to files or devices outside the image',
    'This VMDK reads parts of the disk from files or raw devices named by path. A hypervisor would open those paths on the host.'],
  'encrypted': ['Encrypted',
    'The contents are encrypted, so they cannot be checked or converted without the key.'],
  'unknown-feature': ['Uses features vmdisk does not know',
    'The image sets flags this tool does not understand. Other programs may read it differently, so its contents cannot be vouched for.'],
  'format-mismatch': ['Valid as several formats at once',
    'The file is a polyglot: it parses as more than one format. Different programs would see different disks, a known trick to slip content past upload checks.'],
  'truncated': ['Cut short',
    'The file ends before the data it describes: an incomplete download or copy. Part of the disk is missing.'],
  'corrupt': ['Damaged structure',
    'The image\'s internal tables are inconsistent or marked corrupt. Reading it may give wrong data.'],
  'unsupported-format': ['Format not readable yet',
    'vmdisk recognises this format but cannot read its contents yet, so it cannot convert it. The size and checks above still apply.'],
  'dirty': ['Not closed cleanly',
    'The program writing this image stopped without closing it (a crash or power loss). Its metadata may need repair, for example with qemu-img check -r all.'],
  'unaligned-size': ['Size is not a whole number of sectors',
    'Raw disks must be a multiple of 512 bytes long; clouds refuse other sizes.'],
  'unused-file': ['File not used',
    'One of the files you chose is not part of this image; it was ignored.'],
  'partition-past-end': ['Partition runs past the end',
    'The partition table describes space beyond the end of the file: the disk was truncated or shrunk.'],
  'missing-extent': ['Part of the disk is missing',
    'The VMDK descriptor lists an extent file that was not chosen. Choose every file of the image together.'],
  'noaccess-extent': ['Part of the disk is unreadable by design',
    'The VMDK marks an extent as not accessible; that part of the disk reads as zeros.'],
  'extent-size': ['Extent size disagrees with the descriptor',
    'A VMDK extent holds a different amount of data than its descriptor says. Programs may disagree on the disk\'s contents.'],
  'parent-mismatch': ['Parent does not match',
    'This differencing image and the parent supplied do not fit together (different sizes or identities): the combined disk may be wrong.'],
  'parent-modified': ['Parent changed since this image was made',
    'The parent disk was modified after this differencing image was created, so the combined disk is probably not what the VM last saw.'],
  'size-ambiguous': ['Two possible disk sizes',
    'The image records its size in two ways that disagree. Different hypervisors pick different ones.'],
  'bare-filesystem': ['A filesystem, not a whole disk',
    'The file holds a single filesystem with no partition table or boot loader. It boots only as a cloud machine image with a separate kernel and ramdisk.'],
  'dirty-bitmap': ['Carries change-tracking bitmaps',
    'The image holds dirty bitmaps used for incremental backups. They are not carried over by a conversion.'],
  'log-replayed': ['Unfinished updates were applied',
    'The VHDX log held updates that were not yet applied to the file. vmdisk applied them in memory to read the disk; the file itself is unchanged.'],
  'ova-layout': ['Unusual OVA layout',
    'The OVA archive does not put its descriptor first, as the OVF standard requires; some hypervisors refuse it.'],
  'unsafe-member-name': ['Archive member escapes its folder',
    'A file inside the OVA has a name that would be written outside the extraction folder when unpacked, a classic path traversal attack.'],
  'unverified-content': ['Content not verified',
    'The appliance\'s checksums could not be checked against its contents, so tampering would go unnoticed.'],
};

const FORMATS = {
  raw: 'Raw disk', qcow2: 'QEMU copy-on-write', qcow: 'QEMU copy-on-write (legacy)', qed: 'QEMU enhanced disk',
  vmdk: 'VMware virtual disk', vdi: 'VirtualBox disk image', vhd: 'Virtual Hard Disk', vhdx: 'Hyper-V virtual hard disk',
  parallels: 'Parallels disk', luks: 'LUKS encrypted volume', iso: 'Optical disc image', ova: 'Open virtual appliance',
  ami: 'Root filesystem image', aki: 'Linux kernel', ari: 'Initial ramdisk', uec: 'Ubuntu cloud image bundle',
};

const ROLES = {
  image: 'the disk image',
  backing: 'read where the overlay has no data',
  extent: 'holds part of the disk',
  'data-file': 'holds the image\'s data',
  unused: 'not used by this image',
};

// ---------------------------------------------------------------------------------------------
// Formatting.

const numberFormat = new Intl.NumberFormat('en-US');

function human(n) {
  const v0 = Number(n);
  if (!Number.isFinite(v0)) return String(n);
  if (Math.abs(v0) < 1024) return `${v0} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = v0;
  let i = -1;
  do { v /= 1024; i++; } while (Math.abs(v) >= 1024 && i < units.length - 1);
  const shown = Number.isInteger(v) ? String(v) : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0);
  return `${shown} ${units[i]}`;
}

const bytes = (n) => `${numberFormat.format(n)} ${Number(n) === 1 ? 'byte' : 'bytes'}`;

function duration(s) {
  if (!Number.isFinite(s) || s < 0) return '';
  if (s < 1) return 'under a second';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

const ACRONYMS = new Set(['id', 'guid', 'uuid', 'l1', 'l2', 'lba', 'mbr', 'gpt', 'vm', 'os', 'cid', 'crc', 'ovf', 'iso', 'fat', 'ntfs', 'efi']);

function label(key) {
  const words = String(key).split(/[-_]/).filter(Boolean)
    .map((w) => (ACRONYMS.has(w.toLowerCase()) ? w.toUpperCase() : w));
  const s = words.join(' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// Keys whose numbers are byte counts in every format's details (offsets are not: some are sectors).
const isByteKey = (k) => (/(^|-)size$/.test(k) && !/^(table|chs)-size$/.test(k)) || k === 'start' || k === 'bytes';

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function errorText(e) {
  if (e === null || e === undefined) return 'unknown error';
  if (typeof e === 'string') return e;
  const msg = e.message || (typeof e.toString === 'function' ? e.toString() : '') || 'unknown error';
  return msg === '[object Object]' ? JSON.stringify(e) : msg;
}

// "the image reads ..." -> "The image reads ....". A first word that is a file name or "vmdisk"
// keeps its case.
const sentence = (s) => {
  const t = String(s).trim();
  if (!t) return t;
  const first = t.split(/\s/, 1)[0];
  const head = /^[a-z]+:?$/.test(first) && first !== 'vmdisk' ? t.charAt(0).toUpperCase() + t.slice(1) : t;
  return head + (/[.!?)"]$/.test(t) ? '' : '.');
};

// ---------------------------------------------------------------------------------------------
// Messages.

function showError(title, detail, hint) {
  const box = $('error');
  box.replaceChildren(
    el('span', { class: 'error-icon', 'aria-hidden': 'true' }),
    el('div', {},
      el('p', { class: 'error-title', text: title }),
      detail ? el('p', { class: 'error-detail', text: sentence(detail) }) : null,
      hint ? el('p', { class: 'error-hint', text: hint }) : null),
    el('button', { type: 'button', class: 'error-close', 'aria-label': 'Dismiss this message', text: '×' }),
  );
  box.querySelector('.error-close').addEventListener('click', clearError);
  box.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').replaceChildren();
}

const busy = (text) => { $('busy').textContent = text || ''; };

// ---------------------------------------------------------------------------------------------
// Choosing files.

function setFiles(list, { add = false } = {}) {
  const incoming = Array.from(list || []);
  if (!incoming.length) return;
  if (add) {
    const byName = new Map(state.files.map((f) => [f.name, f]));
    for (const f of incoming) byName.set(f.name, f);
    state.files = [...byName.values()];
  } else {
    state.files = incoming;
  }
  inspectCurrent();
}

function removeFile(name) {
  state.files = state.files.filter((f) => f.name !== name);
  inspectCurrent();
}

function renderPicked() {
  const list = $('picked-list');
  list.replaceChildren(...state.files.map((f) => {
    const remove = el('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove ${f.name}`, text: '×' });
    remove.addEventListener('click', () => removeFile(f.name));
    return el('li', { class: 'chip' }, el('span', { class: 'chip-name', text: f.name }),
      el('span', { class: 'chip-size', text: human(f.size) }), remove);
  }));
  $('picked').hidden = state.files.length === 0;
  $('drop').classList.toggle('compact', state.files.length > 0);
}

async function inspectCurrent() {
  const seq = ++state.seq;
  abortRun();
  clearError();
  resetConvert();
  state.report = null;
  $('report').hidden = true;
  $('report').removeAttribute('data-json');
  $('convert-box').hidden = true;
  renderPicked();
  if (!state.files.length) { busy(''); return; }

  const names = state.files.map((f) => f.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) {
    busy('');
    showError('Two files have the same name', `${dup} was chosen twice`, 'Companion files are matched by name, so every name must be unique.');
    return;
  }

  busy(state.files.length === 1 ? `Reading ${names[0]}…` : `Reading ${state.files.length} files…`);
  try {
    const api = await engine();
    const report = await api.inspect(state.files.slice());
    if (seq !== state.seq) return;
    renderReport(report);
  } catch (e) {
    if (seq !== state.seq) return;
    showError(state.files.length === 1 ? `${names[0]} could not be read as a disk image` : 'These files could not be read as a disk image',
      errorText(e), inspectHint(e));
  } finally {
    if (seq === state.seq) busy('');
  }
}

// Engine errors carry a stable `kind` (the message is the CLI's one-line message).
const HINTS = {
  'not-an-image': 'vmdisk found no disk image it can read in this file.',
  truncated: 'The file is shorter than its own headers say: the download or copy was probably cut short.',
  corrupt: 'The image\'s internal tables are damaged; it cannot be read safely.',
  missing: 'Choose every file of the image together: the overlay with its backing file, the descriptor with its extents.',
  unsupported: 'vmdisk does not support this yet.',
  io: 'The browser could not read the file. If it is on a removable or network drive, copy it locally and try again.',
};

function inspectHint(e) {
  const m = errorText(e).toLowerCase();
  if (m.includes(' is empty')) return 'The file has no content. Check that the download or copy finished.';
  if (e && HINTS[e.kind]) return HINTS[e.kind];
  if (m.includes('truncated') || m.includes('ends inside')) return HINTS.truncated;
  if (m.includes('not supplied') || m.includes('missing')) return HINTS.missing;
  return HINTS['not-an-image'];
}

// ---------------------------------------------------------------------------------------------
// The report.

const ICON_OK = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M5 12.5l4.5 4.5L19 7.5" fill="none" stroke="currentColor" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/></svg>';
const ICON_BAD = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M7 7l10 10M17 7L7 17" fill="none" stroke="currentColor" stroke-width="2.6" stroke-linecap="round"/></svg>';

function jsonOf(value) {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v));
}

function mainFile(report) {
  const files = report.files || [];
  return (files.find((f) => f.role === 'image') || files[0] || state.files[0] || { name: 'disk' }).name;
}

function renderReport(r) {
  state.report = r;
  const findings = [...(r.safety?.findings || [])]
    .sort((a, b) => (SEVERITY[a.severity]?.rank ?? 3) - (SEVERITY[b.severity]?.rank ?? 3));
  const count = (s) => findings.filter((f) => f.severity === s).length;
  const critical = count('critical');
  const warnings = count('warning');
  const safe = !!r.safety?.safe;

  // Verdict.
  const v = $('verdict');
  v.className = `verdict ${safe ? (warnings ? 'safe warn' : 'safe') : 'unsafe'}`;
  const plural = (n, w) => `${n} ${w}${n === 1 ? '' : 's'}`;
  const sub = !safe
    ? `Do not upload or boot this image as it is: ${plural(critical, 'critical problem')} below.`
    : warnings
      ? `No critical problems, but read the ${plural(warnings, 'warning')} below.`
      : 'No problems found: the image is self-contained and its structure is sound.';
  v.innerHTML = `<span class="verdict-icon">${safe ? ICON_OK : ICON_BAD}</span>`;
  v.append(el('div', {},
    el('p', { class: 'verdict-title', text: safe ? 'Safe' : 'Unsafe' }),
    el('p', { class: 'verdict-sub', text: sub }),
    el('p', { class: 'verdict-file', text: mainFile(r) })));
  v.setAttribute('data-safe', String(safe));

  // Facts.
  const fmt = String(r.format || 'unknown');
  $('r-format').textContent = fmt;
  const version = r['format-specific']?.version;
  const table = r['format-specific']?.['partition-table'];
  $('r-format-note').textContent = [FORMATS[fmt] || '', version !== undefined ? `version ${version}` : '',
    typeof table === 'string' ? `${table.toUpperCase()} partition table` : ''].filter(Boolean).join(', ');
  $('r-virtual').textContent = human(r['virtual-size']);
  $('r-virtual-bytes').textContent = bytes(r['virtual-size']);
  $('r-actual').textContent = human(r['actual-size']);
  $('r-actual-bytes').textContent = bytes(r['actual-size']);

  // Findings.
  $('findings').replaceChildren(...(findings.length ? findings.map(renderFinding)
    : [el('li', { class: 'finding none', text: 'Nothing to report.' })]));

  // Files.
  $('files-table').tBodies[0].replaceChildren(...(r.files || []).map((f) => el('tr', { class: f.role === 'unused' ? 'muted' : null },
    el('td', { class: 'name' }, el('span', { class: 'file-name', text: f.name })),
    el('td', {}, el('span', { class: `role role-${f.role}`, text: f.role }), el('span', { class: 'role-why', text: ROLES[f.role] || '' })),
    el('td', { class: 'num', title: bytes(f.size) }, human(f.size)))));

  // Other detected formats.
  const others = (r.detected || []).filter((d) => d !== r.format);
  $('detected-box').hidden = others.length === 0;
  $('detected').replaceChildren(
    'Besides ', el('strong', { text: fmt }), ', the file carries the signature of ',
    ...others.flatMap((d, i) => [i ? (i === others.length - 1 ? ' and ' : ', ') : '', el('strong', { text: d }), FORMATS[d] ? ` (${FORMATS[d]})` : '']),
    '. Programs that trust the other signature would see a different disk.');

  // Format details.
  const spec = r['format-specific'] || {};
  $('details-box').hidden = Object.keys(spec).length === 0;
  $('details').replaceChildren(renderObject(spec));

  $('report').setAttribute('data-json', jsonOf(r));
  $('report').hidden = false;
  setupConvert(r);
}

function renderFinding(f) {
  const [title, explanation] = FINDINGS[f.code] || [label(f.code || 'finding'), ''];
  const sev = SEVERITY[f.severity] ? f.severity : 'info';
  return el('li', { class: `finding ${sev}`, 'data-code': f.code },
    el('span', { class: `badge ${sev}`, text: SEVERITY[sev].label }),
    el('div', { class: 'finding-body' },
      el('p', { class: 'finding-title' }, title, ' ', el('code', { text: f.code })),
      explanation ? el('p', { class: 'finding-why', text: explanation }) : null,
      f.message ? el('p', { class: 'finding-msg' }, el('span', { class: 'finding-msg-label', text: 'Found: ' }), sentence(f.message)) : null));
}

function renderScalar(key, v) {
  if (v === null || v === undefined) return el('span', { class: 'muted', text: '—' });
  if (typeof v === 'boolean') return el('span', { class: `bool ${v}`, text: v ? 'yes' : 'no' });
  if (typeof v === 'number' || typeof v === 'bigint') {
    if (key === 'date-sec') return new Date(Number(v) * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    if (isByteKey(key) && Number(v) >= 1024) return el('span', {}, human(v), el('span', { class: 'muted', text: ` (${bytes(v)})` }));
    if (isByteKey(key)) return bytes(v);
    return numberFormat.format(v);
  }
  if (typeof v === 'string') return el('span', { class: /^[0-9A-Fa-f-]{16,}$/.test(v) ? 'mono' : null, text: v });
  return jsonOf(v);
}

function renderValue(key, v) {
  if (Array.isArray(v)) {
    if (!v.length) return el('span', { class: 'muted', text: 'none' });
    if (v.every((x) => x && typeof x === 'object' && !Array.isArray(x))) return renderRows(v);
    return v.map((x) => (x && typeof x === 'object' ? jsonOf(x) : String(x))).join(', ');
  }
  if (v && typeof v === 'object') return renderObject(v);
  return renderScalar(key, v);
}

function renderObject(obj) {
  const keys = Object.keys(obj);
  if (!keys.length) return el('p', { class: 'muted', text: 'No further details for this format.' });
  const isRows = (v) => Array.isArray(v) && v.length > 0 && v.every((x) => x && typeof x === 'object' && !Array.isArray(x));
  // Lists of records (partitions, snapshots, extents) take the full width under their name.
  const rows = keys.flatMap((k) => (isRows(obj[k])
    ? [el('tr', { class: 'group' }, el('th', { scope: 'rowgroup', colspan: '2', text: label(k) })),
      el('tr', { class: 'group-body' }, el('td', { colspan: '2' }, el('div', { class: 'table-scroll' }, renderRows(obj[k]))))]
    : [el('tr', {}, el('th', { scope: 'row', text: label(k) }), el('td', {}, renderValue(k, obj[k])))]));
  return el('table', { class: 'table kv' }, el('colgroup', {}, el('col', { class: 'k' }), el('col', {})), el('tbody', {}, rows));
}

function renderRows(rows) {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return el('table', { class: 'table rows' },
    el('thead', {}, el('tr', {}, cols.map((c) => el('th', { scope: 'col', text: label(c) })))),
    el('tbody', {}, rows.map((r) => el('tr', {}, cols.map((c) => el('td', {}, renderValue(c, r[c])))))));
}

// ---------------------------------------------------------------------------------------------
// Converting.

function setupConvert(r) {
  const box = $('convert-box');
  box.hidden = false;
  const note = $('convert-note');
  if (r.convertible) {
    note.hidden = true;
    $('convert').disabled = false;
  } else {
    const f = r.safety?.findings || [];
    const missing = f.find((x) => /not supplied|missing/.test(x.message || ''));
    const unsupported = f.find((x) => x.code === 'unsupported-format');
    note.textContent = missing
      ? `This image can't be converted yet: ${missing.message}. Add that file with "Add files…".`
      : unsupported
        ? `vmdisk can't read the contents of ${r.format} images yet, so it can't convert this one.`
        : 'This image can\'t be converted: see the findings above.';
    note.hidden = false;
    $('convert').disabled = true;
  }
  syncCompression();
}

function syncCompression() {
  const raw = $('format').value === 'raw';
  $('compression').disabled = raw;
  if (raw) $('compression').value = '';
}

function outputName(target) {
  const name = state.report ? mainFile(state.report) : 'disk';
  const stem = name.replace(/\.(qcow2|qcow|img|raw|bin|vmdk|vdi|vhdx?|iso|qed|hdd|ova|dd)$/i, '') || 'disk';
  const out = `${stem}.${target}`;
  return out === name ? `${stem}-converted.${target}` : out;
}

function setConvertState(s) {
  $('convert-box').dataset.state = s;
  const running = s === 'running';
  $('convert').hidden = running;
  $('cancel').hidden = !running;
  $('cancel').disabled = !running;
  $('format').disabled = running;
  $('compression').disabled = running || $('format').value === 'raw';
}

function resetConvert() {
  setConvertState('idle');
  $('progress').value = 0;
  $('progress').max = 1;
  $('convert-status').textContent = '';
  $('result').hidden = true;
  $('result').replaceChildren();
  if (state.url) { URL.revokeObjectURL(state.url); state.url = null; }
  // One output at a time: the previous one leaves the browser's storage.
  if (state.result) {
    const old = state.result;
    state.result = null;
    state.api?.release?.(old).catch(() => {});
  }
}

function abortRun() {
  if (state.run) state.run.controller.abort();
  state.run = null;
}

async function startConvert() {
  if (!state.report || state.run) return;
  clearError();
  resetConvert();
  const format = $('format').value;
  const compression = format === 'qcow2' && $('compression').value ? $('compression').value : null;
  const controller = new AbortController();
  const run = { controller };
  state.run = run;
  setConvertState('running');
  const progress = $('progress');
  progress.removeAttribute('value'); // indeterminate until the first report
  $('convert-status').textContent = 'Starting…';
  const t0 = performance.now();
  // Progress may arrive faster than frames: draw the latest once per frame.
  let latest = null;
  let queued = false;
  const onProgress = (p) => {
    if (state.run !== run) return;
    latest = p;
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      if (state.run === run && latest) showProgress(latest, t0);
    });
  };
  try {
    const api = await engine();
    const result = await api.convert(state.files.slice(), { format, compression, onProgress, signal: controller.signal });
    if (state.run !== run) return;
    state.run = null;
    const secs = (performance.now() - t0) / 1000;
    progress.max = 1;
    progress.value = 1;
    setConvertState('done');
    const name = result.name || outputName(format);
    state.result = result;
    state.url = URL.createObjectURL(result.file);
    const total = state.report['virtual-size'];
    $('convert-status').textContent = `Done in ${duration(secs)} (${human(Number(total) / Math.max(secs, 1e-3))}/s).`;
    $('result').replaceChildren(
      el('a', { id: 'download', class: 'button primary', href: state.url, download: name }, `Download ${name}`),
      el('span', { class: 'result-note' }, `${format}${compression ? ` with ${compression}` : ''}, ${human(result.size ?? result.file.size)}`,
        el('span', { class: 'muted', text: ` (${bytes(result.size ?? result.file.size)})` })));
    $('result').hidden = false;
    $('download').focus();
  } catch (e) {
    if (state.run !== run) return; // replaced by a newer file set
    state.run = null;
    progress.max = 1;
    progress.value = 0;
    if (e && e.name === 'AbortError') {
      setConvertState('cancelled');
      $('convert-status').textContent = 'Cancelled. Nothing was kept.';
    } else {
      setConvertState('failed');
      $('convert-status').textContent = 'Failed.';
      showError('The conversion failed', errorText(e), convertHint(e));
    }
  }
}

function convertHint(e) {
  const m = errorText(e).toLowerCase();
  if (m.includes('quota') || m.includes('space') || (m.includes('storage') && m.includes('full'))) {
    return 'The browser ran out of storage for the output. Private windows allow only a little: use a normal window, free some disk space, or convert to qcow2 with compression for a smaller result.';
  }
  if (m.includes('opfs') || m.includes('getdirectory') || m.includes('security')) return 'This browser does not let the page store the output (private windows often do not). Try a normal window.';
  return null;
}

function showProgress(p, t0) {
  const total = Number(p.total) || 0;
  const done = Number(p.done) || 0;
  const elapsed = (performance.now() - t0) / 1000;
  const rate = Number(p.rate) > 0 ? Number(p.rate) : elapsed > 0 ? done / elapsed : 0;
  const progress = $('progress');
  if (total > 0) { progress.max = total; progress.value = Math.min(done, total); }
  const pct = total > 0 ? Math.floor((done / total) * 100) : 0;
  const left = rate > 0 && total > done ? duration((total - done) / rate) : '';
  $('convert-status').textContent = [`${pct}%`, `${human(done)} of ${human(total)}`,
    rate > 0 ? `${human(rate)}/s` : '', left ? `${left} left` : ''].filter(Boolean).join(' · ');
}

// ---------------------------------------------------------------------------------------------
// Start-up.

let enginePromise = null;
function engine() {
  if (!enginePromise) {
    enginePromise = import('./vmdisk.js').then((m) => {
      state.api = { inspect: m.inspect, convert: m.convert, release: m.release, map: m.map, memory: m.memory };
      window.vmdisk = state.api;
      return state.api;
    }, (e) => {
      enginePromise = null;
      throw new Error(`the disk engine could not be loaded (${errorText(e)})`);
    });
  }
  return enginePromise;
}

function wire() {
  $('files').addEventListener('change', (e) => { setFiles(e.target.files); e.target.value = ''; });
  $('add-files').addEventListener('change', (e) => { setFiles(e.target.files, { add: true }); e.target.value = ''; });
  $('clear').addEventListener('click', () => { state.files = []; inspectCurrent(); $('files').focus(); });
  $('format').addEventListener('change', syncCompression);
  $('convert').addEventListener('click', startConvert);
  $('cancel').addEventListener('click', () => {
    if (!state.run) return;
    $('cancel').disabled = true;
    $('convert-status').textContent = 'Cancelling…';
    state.run.controller.abort();
  });

  // Drag and drop anywhere on the page; a file dropped outside the zone must not navigate away.
  const drop = $('drop');
  let depth = 0;
  const hasFiles = (e) => Array.from(e.dataTransfer?.types || []).includes('Files');
  window.addEventListener('dragenter', (e) => { if (!hasFiles(e)) return; depth++; drop.classList.add('over'); });
  window.addEventListener('dragleave', () => { depth = Math.max(0, depth - 1); if (!depth) drop.classList.remove('over'); });
  window.addEventListener('dragover', (e) => { if (hasFiles(e)) { e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; } });
  window.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    drop.classList.remove('over');
    setFiles(e.dataTransfer.files, { add: e.shiftKey && state.files.length > 0 });
  });

  // Nothing fails silently.
  window.addEventListener('error', (e) => showError('Something went wrong', errorText(e.error || e.message)));
  window.addEventListener('unhandledrejection', (e) => showError('Something went wrong', errorText(e.reason)));
}

wire();
engine().catch((e) => showError('vmdisk could not start', errorText(e),
  'Reload the page. If it keeps failing, this browser may not support WebAssembly modules in workers.'));

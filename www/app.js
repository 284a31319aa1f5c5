// The page: pick files, show the report, convert and download. All work happens in vmdisk.js
// (a Web Worker running the wasm engine); this file only drives the DOM.
//
// Element ids other tools rely on: files, report (data-json), format, compression, convert, cancel,
// progress, error. `window.vmdisk` exposes { inspect, convert, verify, ... } once the engine module
// has loaded. A package's disks, their conversions and the integrity check live in disks.js.

import { createPackages } from './disks.js';

const $ = (id) => document.getElementById(id);

const state = {
  api: null, // { inspect, convert } from vmdisk.js
  files: [], // File objects of the current image set
  report: null,
  seq: 0, // bumps on every new file set: late answers for an old set are dropped
  run: null, // { controller } while a conversion runs
  url: null, // object URL of the last result
  result: null, // the last conversion's result: its output stays in OPFS until released
  checked: [], // findings of the last integrity check of this file set (a package's verify())
  checkedAll: false, // whether that check ran to its end
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
    'The image\'s internal structure (its tables, or a compressed stream\'s data and checksums) is inconsistent or marked corrupt. Reading it may give wrong data.'],
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
  // Packages: OVA/OVF, UEC and GCE tarballs, compressed images.
  'ova-layout': ['Unusual OVA layout',
    'The OVA archive does not put its descriptor first, as the OVF standard requires; some hypervisors refuse it.'],
  'unsafe-member-name': ['A name that escapes its folder',
    'A name inside the package (an archive member, or a file the descriptor points to) is an absolute path, climbs out with "..", is a URL or is a link, or two members share one name. vmdisk never follows such a name, but a tool unpacking the package might write or read files outside its folder, or use a different file than vmdisk did.'],
  'unverified-content': ['Content not verified',
    'The appliance\'s checksums could not be checked against its contents, so tampering would go unnoticed.'],
  'missing-member': ['Part of the package is missing',
    'The package lacks a file it should hold: a disk its descriptor names, a machine image or a kernel. What is missing can be neither checked nor converted.'],
  'manifest': ['Manifest and checksums',
    'A package\'s manifest (.mf) records a digest, a fingerprint, of each of its files. This note says what was checked against it, or why it could not be: no manifest, lines vmdisk cannot read, files it lists that the package does not hold. A compressed stream\'s own checksums are reported here too.'],
  'digest-mismatch': ['A file does not match the manifest',
    'The package\'s manifest records a digest of this file, and the file\'s digest is different: it was damaged in transfer or changed after the manifest was made. Do not use the package until you have a copy whose digests match.'],
  'signed': ['Signed',
    'The package carries a signature over its manifest (a .cert file), and vmdisk checked that it matches the certificate\'s key. The message names the signer. A browser has no list of authorities to vouch for certificates, so vmdisk cannot tell whether the signer is who the certificate claims: compare the name with who you expect the package from.'],
  'bad-signature': ['The signature does not match',
    'The package\'s signature does not verify over its manifest (or there is a certificate but no manifest for it to sign). The manifest or the certificate file was changed after signing: this is not the package that was signed.'],
  'signed-file-mismatch': ['The signature covers another file',
    'The .cert file signs a file other than this package\'s manifest, so it vouches for nothing in this package.'],
  'unparsable-cert-file': ['Signature file unreadable',
    'The package\'s .cert file does not start with the line vmdisk expects (a digest name, the manifest\'s name and the signature in hex), or is far too large to be one. The signature cannot be checked.'],
  'unparsable-certificate': ['Certificate unreadable',
    'The .cert file holds no readable X.509 certificate, so the signature cannot be checked.'],
  'unsupported-digest': ['Unknown signature digest',
    'The signature names a digest other than SHA-1, SHA-256, SHA-384 or SHA-512, so vmdisk cannot check it.'],
  'unsupported-key': ['Signing key cannot be checked',
    'OVF signatures use RSA keys. This certificate\'s key is of another kind, or an RSA key of a size vmdisk does not accept, so the signature was not checked.'],
  'weak-digest': ['Signed over SHA-1',
    'The signature is made over a SHA-1 digest, which a well-funded attacker can forge. A signature over SHA-256 (ovftool --shaAlgorithm=SHA256) is stronger.'],
  'weak-key': ['Weak signing key',
    'The signing key is RSA with fewer than 2048 bits; keys that short can be forged.'],
  'bad-certificate-signature': ['Certificate damaged',
    'The certificate names itself as its issuer, but its own signature does not verify with its key: it was damaged or edited after it was made.'],
  'certificate-expired': ['Signing certificate expired',
    'The certificate that signed the package is past its expiry date. The signature itself can still match; whether an expired signer is acceptable is your call.'],
  'certificate-not-yet-valid': ['Signing certificate not valid yet',
    'The certificate\'s validity starts after today\'s date: either the certificate or this computer\'s clock is wrong.'],
  'capacity-mismatch': ['The descriptor gives another disk size',
    'The OVF descriptor records a different capacity for this disk than the disk image itself holds. vmdisk uses the image\'s own size; a hypervisor importing the package may use the descriptor\'s and grow or cut the disk.'],
  'format-label': ['Not the format the descriptor says',
    'The OVF descriptor labels this disk as one format, but its bytes are another (oVirt, for example, labels qcow2 disks as VMDK). vmdisk reads the bytes as what they are; an importer that trusts the label may refuse or misread the disk.'],
  'name-mismatch': ['Named like something else',
    'A member of the tarball is named like one thing (a kernel, a ramdisk, a disk) but holds another. vmdisk goes by the content; a tool that goes by the name would use it wrongly.'],
  'not-a-disk': ['A boot file, not a disk',
    'This is a Linux kernel (AKI) or an initial ramdisk (ARI), not a disk image, so it is not converted. Upload it unchanged next to the machine image, with the image formats the message gives.'],
  'compressed-disk': ['Stored compressed',
    'This disk is inside a compressed stream, and its format must be read at random places, so its tables are checked in full only when it is converted: vmdisk first decompresses it into a temporary file in this site\'s private browser storage, deleted when the conversion ends.'],
  // The OVF descriptor.
  'ovf-dangling-ref': ['The descriptor refers to something it lacks',
    'An entry of the OVF descriptor points to another (a disk to its file, a hardware item to its disk or controller) that the descriptor does not contain. Importers may drop the disk or refuse the package.'],
  'ovf-duplicate-id': ['The descriptor reuses an id',
    'Two files, disks, virtual machines or hardware items in the OVF descriptor share one id, so what refers to it is ambiguous: importers may pick different ones.'],
  'ovf-missing-attribute': ['A descriptor entry is incomplete',
    'An entry of the OVF descriptor lacks a required attribute: a file\'s id or path, a disk\'s id, a virtual machine\'s id. A disk without an id is skipped.'],
  'ovf-missing-capacity': ['Disk size not given',
    'The OVF descriptor gives no usable capacity for a disk, so the disk image\'s own size is used.'],
  'ovf-unknown-units': ['Unknown size units',
    'A size in the OVF descriptor is in units vmdisk does not know as a multiple of bytes, so that size is not used. Memory with no units is taken to be in MiB.'],
  'ovf-size-overflow': ['Impossibly large size',
    'A size in the OVF descriptor, times its units, does not fit in 64 bits. It is ignored.'],
  'ovf-bad-value': ['Not a number',
    'A value of the OVF descriptor that must be a number (a size, a chunk size, a CPU count) is not one, and is ignored.'],
  'ovf-no-virtual-system': ['No virtual machine described',
    'The OVF descriptor lists files and disks but describes no virtual machine, so an importer has no machine to create from it.'],
  'ovf-nesting-limit': ['Groups nested too deeply',
    'The descriptor nests groups of virtual machines deeper than vmdisk reads; what lies deeper was ignored.'],
  'ovf-too-many': ['Too many entries',
    'The OVF descriptor lists more files, disks, machines and devices than vmdisk reads; the rest were ignored.'],
  'ovf-version-mismatch': ['OVF version and namespace disagree',
    'The descriptor\'s version number and the OVF namespace it is written in name different OVF versions. oVirt and virt-v2v exports do this; importers usually accept it.'],
  'ovf-problems-truncated': ['More descriptor problems',
    'The OVF descriptor has more problems than are listed here; the rest were counted, not shown.'],
};

const FORMATS = {
  raw: 'Raw disk', qcow2: 'QEMU copy-on-write', qcow: 'QEMU copy-on-write (legacy)', qed: 'QEMU enhanced disk',
  vmdk: 'VMware virtual disk', vdi: 'VirtualBox disk image', vhd: 'Virtual Hard Disk', vhdx: 'Hyper-V virtual hard disk',
  parallels: 'Parallels disk', luks: 'LUKS encrypted volume', iso: 'Optical disc image', ova: 'Open virtual appliance',
  ami: 'Root filesystem image', aki: 'Linux kernel', ari: 'Initial ramdisk', uec: 'Ubuntu cloud image bundle',
  ovf: 'Open virtualization format package', gce: 'Google Compute Engine image tarball', compressed: 'Compressed disk image',
};

const ROLES = {
  image: 'the disk image',
  backing: 'read where the overlay has no data',
  extent: 'holds part of the disk',
  'data-file': 'holds the image\'s data',
  unused: 'not used by this image',
  package: 'the package, read in place',
  descriptor: 'the OVF descriptor',
  manifest: 'digests of the package\'s files',
  certificate: 'the signature over the manifest',
  disk: 'a disk of the package',
  member: 'a file of the package',
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

const ACRONYMS = new Set(['id', 'guid', 'uuid', 'l1', 'l2', 'lba', 'mbr', 'gpt', 'vm', 'os', 'cid', 'crc', 'ovf', 'iso', 'fat', 'ntfs', 'efi', 'ami', 'aki', 'ari', 'nic', 'uec', 'gce']);

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
  packages.reset();
  state.report = null;
  state.checked = [];
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

// The findings shown: the report's, and those an integrity check added (state.checked).
function allFindings(r) {
  const seen = new Set();
  return [...(r.safety?.findings || []), ...state.checked]
    .filter((f) => {
      const key = `${f.code}\n${f.severity}\n${f.message}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => (SEVERITY[a.severity]?.rank ?? 3) - (SEVERITY[b.severity]?.rank ?? 3));
}

/** The verdict and the findings list, from the report and any integrity check since. */
function renderSafety() {
  const r = state.report;
  if (!r) return;
  const findings = allFindings(r);
  const count = (s) => findings.filter((f) => f.severity === s).length;
  const critical = count('critical');
  const warnings = count('warning');
  const safe = !!r.safety?.safe && !state.checked.some((f) => f.severity === 'critical');
  const what = r.disks ? 'package' : 'image';

  const v = $('verdict');
  v.className = `verdict ${safe ? (warnings ? 'safe warn' : 'safe') : 'unsafe'}`;
  const plural = (n, w) => `${n} ${w}${n === 1 ? '' : 's'}`;
  const sub = !safe
    ? `Do not upload or boot this ${what} as it is: ${plural(critical, 'critical problem')} below.`
    : warnings
      ? `No critical problems, but read the ${plural(warnings, 'warning')} below.`
      : `No problems found: the ${what} is self-contained and its structure is sound.`;
  v.innerHTML = `<span class="verdict-icon">${safe ? ICON_OK : ICON_BAD}</span>`;
  v.append(el('div', {},
    el('p', { class: 'verdict-title', text: safe ? 'Safe' : 'Unsafe' }),
    el('p', { class: 'verdict-sub', text: sub }),
    r.disks && !state.checkedAll
      ? el('p', { class: 'verdict-note', text: 'Only the headers were read. "Check integrity" below reads the whole package and checks its digests and checksums.' })
      : null,
    el('p', { class: 'verdict-file', text: mainFile(r) })));
  v.setAttribute('data-safe', String(safe));

  $('findings').replaceChildren(...(findings.length ? findings.map(renderFinding)
    : [el('li', { class: 'finding none', text: 'Nothing to report.' })]));
}

function renderReport(r) {
  state.report = r;
  state.checked = [];
  state.checkedAll = false;
  renderSafety();

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
  packages.render(r);
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
    $('convert').disabled = packages.busy();
  } else if (r.disks) {
    note.textContent = 'The package holds no disk that can be converted: see its disks below.';
    note.hidden = false;
    $('convert').disabled = true;
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
  syncBusy();
}

/** One engine task at a time (a conversion or an integrity check): the others wait. */
function syncBusy() {
  const main = !!state.run;
  const fixed = main || packages.converting(); // options are read when a conversion starts
  $('format').disabled = fixed;
  $('compression').disabled = fixed || $('format').value === 'raw';
  $('convert').disabled = !state.report?.convertible || packages.busy();
  packages.sync();
}

/** The target the format and compression selectors name. */
function convertOptions() {
  const format = $('format').value;
  return { format, compression: format === 'qcow2' && $('compression').value ? $('compression').value : null };
}

/** Progress may arrive faster than frames: `draw` gets the latest once per frame while `live()`. */
function frameThrottle(draw, live) {
  let latest = null;
  let queued = false;
  return (p) => {
    if (!live()) return;
    latest = p;
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      if (live() && latest) draw(latest);
    });
  };
}

/**
 * Downloads by object URL: the result each saves. A click first checks that the picked files
 * the output is made of are still readable; a changed one gets a readable error instead of a
 * download that fails in the browser's list.
 */
const downloads = new Map();
document.addEventListener('click', async (e) => {
  const link = e.target.closest?.('a[download]');
  const result = link && downloads.get(link.href);
  if (!result || link.dataset.checked) return;
  e.preventDefault();
  try {
    const api = await engine();
    await api.readable(result);
  } catch (err) {
    showError('The download cannot start', errorText(err), 'The output reads the picked files as it is saved. Pick the files again and convert once more.');
    return;
  }
  link.dataset.checked = '1';
  link.click();
  delete link.dataset.checked;
});

function resetConvert() {
  setConvertState('idle');
  $('progress').value = 0;
  $('progress').max = 1;
  $('convert-status').textContent = '';
  $('result').hidden = true;
  $('result').replaceChildren();
  if (state.url) { URL.revokeObjectURL(state.url); downloads.delete(state.url); state.url = null; }
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
  if (!state.report || state.run || packages.busy()) return;
  clearError();
  resetConvert();
  const { format, compression } = convertOptions();
  const controller = new AbortController();
  const run = { controller };
  state.run = run;
  setConvertState('running');
  const progress = $('progress');
  progress.removeAttribute('value'); // indeterminate until the first report
  $('convert-status').textContent = 'Starting…';
  const t0 = performance.now();
  const onProgress = frameThrottle((p) => drawProgress($('progress'), $('convert-status'), p, t0), () => state.run === run);
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
    downloads.set(state.url, result);
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
  if (state.report?.disks && (e?.kind === 'corrupt' || e?.kind === 'truncated')) {
    return 'The package is damaged. "Check integrity" reads it whole and lists every file that does not match its manifest.';
  }
  return null;
}

/**
 * Show `{ done, total, rate?, phase? }` (bytes) on a progress bar and its status line. Phases
 * before a conversion proper: `verifying` (the manifest digests of the disk) and
 * `decompressing` (a compressed disk copied into temporary storage; total 0 when not known).
 */
function drawProgress(progress, status, p, t0) {
  const total = Number(p.total) || 0;
  const done = Number(p.done) || 0;
  if (p.phase === 'decompressing') {
    if (total > 0) { progress.max = total; progress.value = Math.min(done, total); } else progress.removeAttribute('value');
    status.textContent = `Decompressing the disk into temporary storage first: ${human(done)}${total > 0 ? ` of ${human(total)}` : ' so far'}`;
    return;
  }
  if (p.phase === 'verifying' && total > 0) {
    progress.max = total;
    progress.value = Math.min(done, total);
    status.textContent = `Checking the disk against the package's manifest: ${Math.floor((done / total) * 100)}%`;
    return;
  }
  const elapsed = (performance.now() - t0) / 1000;
  const rate = Number(p.rate) > 0 ? Number(p.rate) : elapsed > 0 ? done / elapsed : 0;
  if (total > 0) { progress.max = total; progress.value = Math.min(done, total); }
  const pct = total > 0 ? Math.floor((done / total) * 100) : 0;
  const left = rate > 0 && total > done ? duration((total - done) / rate) : '';
  status.textContent = [`${pct}%`, `${human(done)} of ${human(total)}`,
    rate > 0 ? `${human(rate)}/s` : '', left ? `${left} left` : ''].filter(Boolean).join(' · ');
}

// ---------------------------------------------------------------------------------------------
// Start-up.

let enginePromise = null;
function engine() {
  if (!enginePromise) {
    enginePromise = import('./vmdisk.js').then((m) => {
      state.api = { inspect: m.inspect, convert: m.convert, verify: m.verify, release: m.release, map: m.map, memory: m.memory, readable: m.readable };
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
  $('format').addEventListener('change', () => { syncCompression(); packages.sync(); });
  $('compression').addEventListener('change', () => packages.sync());
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

const packages = createPackages({
  $, el, human, bytes, duration, state, engine, errorText, showError, clearError, convertHint,
  renderFinding, renderObject, renderSafety, drawProgress, frameThrottle, convertOptions, syncBusy, FORMATS, downloads,
});

wire();
engine().catch((e) => showError('vmdisk could not start', errorText(e),
  'Reload the page. If it keeps failing, this browser may not support WebAssembly modules in workers.'));

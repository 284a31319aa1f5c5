// The report: the verdict and findings, the facts, the files, other detected formats and the
// format's details as tables.

import { $, el } from './dom.js';
import { bytes, human, isByteKey, jsonOf, label, numberFormat, sentence } from './format.js';
import { state } from './state.js';
import { FORMATS, ROLES, SEVERITY } from './words.js';

const ICON_OK = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M5 12.5l4.5 4.5L19 7.5" fill="none" stroke="currentColor" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/></svg>';
const ICON_BAD = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M7 7l10 10M17 7L7 17" fill="none" stroke="currentColor" stroke-width="2.6" stroke-linecap="round"/></svg>';

export function mainFile(report) {
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
export function renderSafety() {
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

export function renderReport(r) {
  state.report = r;
  state.checked = [];
  state.checkedAll = false;
  renderSafety();

  // Facts.
  const fmt = String(r.format || 'unknown');
  $('r-format').textContent = fmt;
  const version = r['format-specific']?.version;
  const table = r['format-specific']?.['partition-table'] ?? r.guest?.['partition-table'];
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

  // The guest disk, read through the image.
  $('guest-box').hidden = !r.guest;
  $('guest').replaceChildren(...(r.guest ? [el('p', { id: 'guest-table', class: 'guest-table', 'data-table': r.guest['partition-table'] || '' }, guestTable(r.guest)),
    Object.keys(r.guest).length ? renderObject(r.guest) : null].filter(Boolean) : []));

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
}

/** A guest layout's partition table in words. */
export function guestTable(g) {
  const t = g?.['partition-table'];
  const n = Array.isArray(g?.partitions) ? g.partitions.length : 0;
  if (typeof t !== 'string') return 'No partition table (MBR or GPT): the disk holds no partitions a firmware would boot from.';
  return `${t.toUpperCase()} partition table${n ? `, ${n} partition${n === 1 ? '' : 's'}` : ''}.`;
}

export function renderFinding(f) {
  const known = state.codes?.get(f.code);
  const [title, explanation] = known ? [known.title, known.explanation] : [label(f.code || 'finding'), ''];
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

export function renderObject(obj) {
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

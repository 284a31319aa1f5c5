// <vmdisk-check>: a drop-in verdict on a disk image, for upload forms. Point it at a file input
// (`<vmdisk-check for="disk">`) or set its `files` (a FileList or File[]); it inspects them with
// vmdisk.js (in its worker: nothing leaves the machine) and shows the format, the sizes, the
// safety findings, each cloud's verdict and the glance values, then dispatches `vmdisk-report`
// ({ detail: { report, files } }) or, when the files cannot be read, `vmdisk-error`
// ({ detail: { error, files } }). Both bubble, so a form can block or pre-fill an upload.
//
// The host's `state` attribute says where it is: idle, checking, safe, unsafe, failed. Styling:
// the custom properties in STYLE below (--vmdisk-ok, --vmdisk-bad, ...) and these parts: box,
// status, verdict, facts, findings, finding (+ critical | warning | info), clouds, cloud
// (+ accepted | refused), reasons, reason, glance, error. Types: vmdisk-check.d.ts.

import { el } from './dom.js';
import { bytes, errorText, fixText, human, sentence } from './format.js';
import { inspect } from './vmdisk.js';
import { CLOUDS, FORMATS, SEVERITY } from './words.js';

const STYLE = `
:host { display: block; font: var(--vmdisk-font, inherit); color: var(--vmdisk-color, inherit); }
:host([hidden]), :host([state="idle"]) { display: none; }
.box { border: var(--vmdisk-border, 1px solid #c8ccd0); border-radius: var(--vmdisk-radius, 6px);
  background: var(--vmdisk-background, transparent); padding: var(--vmdisk-padding, 0.75em 1em); }
.box > * + * { margin-top: var(--vmdisk-gap, 0.6em); }
p, ul, dl { margin: 0; }
ul { padding-left: 1.2em; }
.status, .muted, dt { color: var(--vmdisk-muted, #5f6368); }
.verdict { font-weight: 600; }
.ok { color: var(--vmdisk-ok, #1a7f37); }
.bad { color: var(--vmdisk-bad, #cf222e); }
.warning { color: var(--vmdisk-warn, #9a6700); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; }
dd { margin: 0; }
code { font-family: var(--vmdisk-mono, ui-monospace, monospace); }
.clouds { list-style: none; padding: 0; }
.reasons { margin-top: 0.2em; }
.clouds::before, .glance::before { display: block; grid-column: 1 / -1; color: var(--vmdisk-muted, #5f6368); font-size: 0.9em; }
.clouds::before { content: "Would each cloud take it as it is?"; }
.glance::before { content: "What to declare to OpenStack glance"; }
`;

const stamp = (n) => (Number(n) >= 1024 ? `${human(n)} (${bytes(n)})` : bytes(n));

function facts(r) {
  const name = FORMATS[r.format];
  return el('dl', { part: 'facts', class: 'facts' },
    el('dt', { text: 'Format' }), el('dd', { 'data-key': 'format', 'data-value': r.format }, name ? `${name} ` : '', el('code', { text: r.format })),
    el('dt', { text: 'Virtual size' }), el('dd', { 'data-key': 'virtual-size', 'data-value': String(r['virtual-size']) }, stamp(r['virtual-size'])),
    el('dt', { text: 'File size' }), el('dd', { 'data-key': 'actual-size', 'data-value': String(r['actual-size']) }, stamp(r['actual-size'])));
}

function verdict(r) {
  const critical = r.safety.findings.filter((f) => f.severity === 'critical');
  if (r.safety.safe) return el('p', { part: 'verdict', class: 'verdict ok', 'data-safe': 'true', text: 'Safe to use' });
  return el('p', { part: 'verdict', class: 'verdict bad', 'data-safe': 'false' },
    `Unsafe: ${critical.map((f) => sentence(f.message)).join(' ') || 'see the findings.'}`);
}

function findings(r) {
  const list = [...r.safety.findings].sort((a, b) => (SEVERITY[a.severity]?.rank ?? 9) - (SEVERITY[b.severity]?.rank ?? 9));
  if (!list.length) return null;
  return el('ul', { part: 'findings', class: 'findings' }, list.map((f) => el('li',
    { part: `finding ${f.severity}`, class: f.severity === 'critical' ? 'bad' : f.severity, 'data-code': f.code, 'data-severity': f.severity },
    el('strong', { text: `${SEVERITY[f.severity]?.label ?? f.severity}: ` }), sentence(f.message), ' ', el('code', { class: 'muted', text: f.code }))));
}

function clouds(r) {
  const list = Array.isArray(r.clouds) ? r.clouds : [];
  if (!list.length) return null;
  return el('ul', { part: 'clouds', class: 'clouds', 'aria-label': 'Would each cloud take it as it is' }, list.map((v) => el('li',
    { part: `cloud ${v.accepted ? 'accepted' : 'refused'}`, 'data-target': v.target, 'data-accepted': String(v.accepted) },
    el('strong', { text: `${CLOUDS[v.target] || v.target}: ` }),
    el('span', { class: v.accepted ? 'ok' : 'bad', text: v.accepted ? 'accepted' : 'refused' }),
    v.accepted ? null : el('ul', { part: 'reasons', class: 'reasons' }, v.reasons.map((why) => el('li', { part: 'reason', 'data-code': why.code },
      sentence(why.message), ' ', el('span', { class: 'muted' }, `What to do: ${fixText(why.fix)}`)))))));
}

function glance(r) {
  const g = r.glance;
  if (!g) return null;
  const row = (key, shown) => [el('dt', {}, el('code', { text: key })), el('dd', { 'data-key': key, 'data-value': String(g[key]) }, shown ?? String(g[key]))];
  return el('dl', { part: 'glance', class: 'glance', 'aria-label': 'OpenStack glance values' },
    row('disk_format'), row('container_format'), row('size', stamp(g.size)), row('virtual_size', stamp(g.virtual_size)),
    row('min_disk', `${g.min_disk} GiB`));
}

const fileArray = (files) => (files instanceof Blob ? [files] : Array.from(files ?? []));

export class VmdiskCheck extends HTMLElement {
  static observedAttributes = ['for'];

  #input = null;
  #files = [];
  #report = null;
  #error = null;
  #seq = 0;
  #box;
  #onChange = () => { this.files = this.#input.files; };

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = STYLE;
    this.#box = el('div', { part: 'box', class: 'box' });
    root.append(style, this.#box);
  }

  connectedCallback() {
    if (!this.hasAttribute('state')) this.setAttribute('state', 'idle');
    this.#bind();
  }

  disconnectedCallback() { this.#unbind(); }

  attributeChangedCallback() { if (this.isConnected) this.#bind(); }

  /** The id of the file input it follows (the `for` attribute). */
  get htmlFor() { return this.getAttribute('for') ?? ''; }
  set htmlFor(id) { this.setAttribute('for', id); }

  /** The files last checked; setting a FileList, File[] or File checks them. */
  get files() { return [...this.#files]; }
  set files(files) { this.#check(fileArray(files)); }

  /** The last report (null while checking, after a failure, or before any file). */
  get report() { return this.#report; }
  /** Why the last files could not be read (an Error with `kind`), or null. */
  get error() { return this.#error; }
  get state() { return this.getAttribute('state') ?? 'idle'; }

  /** Check the current files again; resolves to the report (null when they could not be read). */
  check() { return this.#check(this.#files); }

  #bind() {
    this.#unbind();
    const id = this.getAttribute('for');
    if (!id) return;
    const input = this.getRootNode().getElementById?.(id) ?? document.getElementById(id);
    if (!input) {
      // The input may come later in the document than the element.
      if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', () => this.#bind(), { once: true });
      return;
    }
    this.#input = input;
    input.addEventListener('change', this.#onChange);
    if (input.files?.length) this.#onChange();
  }

  #unbind() {
    this.#input?.removeEventListener('change', this.#onChange);
    this.#input = null;
  }

  async #check(files) {
    const seq = ++this.#seq;
    this.#files = files;
    this.#report = null;
    this.#error = null;
    if (!files.length) {
      this.setAttribute('state', 'idle');
      this.#box.replaceChildren();
      return null;
    }
    this.setAttribute('state', 'checking');
    this.#box.replaceChildren(el('p', { part: 'status', class: 'status', role: 'status', text: `Checking ${files.map((f) => f.name).join(', ')}…` }));
    let report;
    try {
      report = await inspect(files);
    } catch (e) {
      if (seq !== this.#seq) return null; // newer files were picked meanwhile
      this.#error = e instanceof Error ? e : new Error(errorText(e));
      this.setAttribute('state', 'failed');
      this.#box.replaceChildren(el('p', { part: 'error', class: 'verdict bad', role: 'alert', 'data-kind': e?.kind ?? '' },
        `Cannot be read: ${sentence(errorText(e))}`));
      this.dispatchEvent(new CustomEvent('vmdisk-error', { bubbles: true, composed: true, detail: { error: this.#error, files } }));
      return null;
    }
    if (seq !== this.#seq) return null;
    this.#report = report;
    this.setAttribute('state', report.safety.safe ? 'safe' : 'unsafe');
    this.#box.replaceChildren(...[verdict(report), facts(report), findings(report), clouds(report), glance(report)].filter(Boolean));
    this.dispatchEvent(new CustomEvent('vmdisk-report', { bubbles: true, composed: true, detail: { report, files } }));
    return report;
  }
}

if (!customElements.get('vmdisk-check')) customElements.define('vmdisk-check', VmdiskCheck);

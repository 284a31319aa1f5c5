// The cloud verdicts: one tile per target (accepted or refused, from the report's `clouds`),
// then each refusal's reasons in plain words with what to do. When what to do is a vmdisk
// conversion the page can run (the reason's `convert`: data, never the fix's text), a button
// starts it with the conversion UI above (or a package disk's card), with the format, disk and
// output name the reason names.
//
// Ids and attributes tests rely on: clouds-box, clouds (li[data-target][data-accepted]),
// cloud-reasons (section[data-target] > li[data-code], button[data-action=fix-convert]).

import { startConvert, syncCompression } from './conversion.js';
import { $, el } from './dom.js';
import { fixText, sentence } from './format.js';
import { packages, state } from './state.js';
import { CLOUDS } from './words.js';

export const TARGETS = CLOUDS;

/** Whether the page can run that conversion on the current files. */
function runnable(c, r) {
  if (c.disk === null || c.disk === undefined) return !!r.convertible;
  return !!r.disks?.[c.disk]?.convertible;
}

function runFix(c) {
  if (state.run || packages.busy()) return;
  $('format').value = c.format;
  syncCompression();
  $('compression').value = '';
  if (c.disk === null || c.disk === undefined) {
    $('convert-box').scrollIntoView({ block: 'nearest' });
    startConvert({ name: c.output });
    return;
  }
  packages.sync();
  const card = document.querySelector(`.disk-card[data-index="${c.disk}"]`);
  card?.scrollIntoView({ block: 'nearest' });
  card?.querySelector('[data-action=convert]')?.click();
}

function fixButton(c, r) {
  if (!c || !runnable(c, r)) return null;
  const onDisk = c.disk !== null && c.disk !== undefined;
  const what = `Convert to ${c.format}${onDisk ? ` (disk ${c.disk + 1})` : ''}`;
  const b = el('button', { type: 'button', class: 'button primary small', 'data-action': 'fix-convert',
    'data-format': c.format, 'data-output': c.output, 'data-disk': onDisk ? String(c.disk) : '', 'data-busy-off': true },
  c['first-step'] ? `${what}: the first step` : `${what} here`);
  b.addEventListener('click', () => runFix(c));
  return b;
}

function tile(v) {
  const n = v.reasons.length;
  return el('li', { class: `cloud ${v.accepted ? 'ok' : 'bad'}`, 'data-target': v.target, 'data-accepted': String(v.accepted) },
    el('span', { class: 'cloud-name', text: TARGETS[v.target] || v.target }),
    el('span', { class: `cloud-verdict ${v.accepted ? 'ok' : 'bad'}`, text: v.accepted ? 'Accepted' : 'Refused' }),
    el('span', { class: 'cloud-why', text: v.accepted ? 'takes the file as it is' : `${n} reason${n === 1 ? '' : 's'} below` }));
}

function reasons(v, r) {
  return el('section', { class: 'cloud-reasons', 'data-target': v.target, 'aria-label': `Why ${TARGETS[v.target] || v.target} refuses it` },
    el('h4', { text: `${TARGETS[v.target] || v.target} refuses it` }),
    el('ul', { class: 'reason-list' }, v.reasons.map((why) => el('li', { class: 'reason', 'data-code': why.code },
      el('p', { class: 'reason-msg' }, sentence(why.message), ' ', el('code', { class: 'muted', text: why.code })),
      el('p', { class: 'reason-fix' }, el('span', { class: 'reason-fix-label', text: 'What to do: ' }), fixText(why.fix)),
      fixButton(why.convert, r)))));
}

/** The verdicts judged again (after an integrity check added findings), for the same report. */
export function redrawClouds(clouds) {
  if (!state.report) return;
  state.report = { ...state.report, clouds };
  renderClouds(state.report);
}

/** The verdicts of a report (hidden when it carries none). */
export function renderClouds(r) {
  const list = Array.isArray(r.clouds) ? r.clouds : [];
  $('clouds-box').hidden = list.length === 0;
  $('clouds').replaceChildren(...list.map(tile));
  $('cloud-reasons').replaceChildren(...list.filter((v) => !v.accepted).map((v) => reasons(v, r)));
}

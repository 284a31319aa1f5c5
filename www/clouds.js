// The cloud verdicts: one tile per target (accepted or refused, from the report's `clouds`),
// then each refusal's reasons in plain words with what to do. When what to do is a vmdisk
// conversion the page can run, a button starts it with the conversion UI above (or a package
// disk's card), with the format, disk and output name the fix names.
//
// Ids and attributes tests rely on: clouds-box, clouds (li[data-target][data-accepted]),
// cloud-reasons (section[data-target] > li[data-code], button[data-action=fix-convert]).

import { startConvert, syncCompression } from './conversion.js';
import { $, el } from './dom.js';
import { fixText, sentence } from './format.js';
import { packages, state } from './state.js';
import { CLOUDS } from './words.js';

export const TARGETS = CLOUDS;

/**
 * The vmdisk conversion a fix names, as the CLI spells it (`vmdisk convert -O raw [--disk N]
 * [-o NAME]`, crate/src/cloud/): `{ format, disk (0-based or null), name, more }`, `more` when
 * the fix goes on with other tools (qemu-img, tar); null when it names none.
 */
export function conversionOf(fix) {
  const m = /vmdisk convert -O (raw|qcow2)(?: --disk (\d+))?(?: -o (\S+))?/.exec(fix);
  if (!m) return null;
  const rest = fix.slice(m.index + m[0].length);
  return {
    format: m[1],
    disk: m[2] ? Number(m[2]) - 1 : null,
    name: m[3] || null,
    more: /\b(qemu-img|tar|truncate)\b/.test(rest),
  };
}

/** Whether the page can run that conversion on the current files. */
function runnable(c, r) {
  if (c.disk === null) return !!r.convertible;
  return !!r.disks?.[c.disk]?.convertible;
}

function runFix(c) {
  if (state.run || packages.busy()) return;
  $('format').value = c.format;
  syncCompression();
  $('compression').value = '';
  if (c.disk === null) {
    $('convert-box').scrollIntoView({ block: 'nearest' });
    startConvert({ name: c.name });
    return;
  }
  packages.sync();
  const card = document.querySelector(`.disk-card[data-index="${c.disk}"]`);
  card?.scrollIntoView({ block: 'nearest' });
  card?.querySelector('[data-action=convert]')?.click();
}

function fixButton(fix, r) {
  const c = conversionOf(fix);
  if (!c || !runnable(c, r)) return null;
  const what = `Convert to ${c.format}${c.disk !== null ? ` (disk ${c.disk + 1})` : ''}`;
  const b = el('button', { type: 'button', class: 'button primary small', 'data-action': 'fix-convert',
    'data-format': c.format, 'data-busy-off': true }, c.more ? `${what}: the first step` : `${what} here`);
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
      fixButton(why.fix, r)))));
}

/** The verdicts of a report (hidden when it carries none). */
export function renderClouds(r) {
  const list = Array.isArray(r.clouds) ? r.clouds : [];
  $('clouds-box').hidden = list.length === 0;
  $('clouds').replaceChildren(...list.map(tile));
  $('cloud-reasons').replaceChildren(...list.filter((v) => !v.accepted).map((v) => reasons(v, r)));
}

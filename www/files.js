// Choosing files (pick, add, remove, drop) and reading them into a report.

import { abortRun, resetConvert, setupConvert } from './conversion.js';
import { $, el } from './dom.js';
import { engine } from './engine.js';
import { errorText, human } from './format.js';
import { clearError, showBusy, showError } from './messages.js';
import { renderClouds } from './clouds.js';
import { renderCheck } from './check.js';
import { renderGlance } from './glance.js';
import { renderReport } from './render.js';
import { packages, state } from './state.js';
import { resetTasks } from './task.js';
import { READ_HINTS } from './words.js';

export function setFiles(list, { add = false } = {}) {
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

export async function inspectCurrent() {
  const seq = ++state.seq;
  abortRun();
  resetTasks();
  clearError();
  resetConvert();
  packages.reset();
  state.report = null;
  state.checked = [];
  $('report').hidden = true;
  $('check-card').hidden = true;
  $('report').removeAttribute('data-json');
  $('convert-box').hidden = true;
  renderPicked();
  if (!state.files.length) { showBusy(''); return; }

  const names = state.files.map((f) => f.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) {
    showBusy('');
    showError('Two files have the same name', `${dup} was chosen twice`, 'Companion files are matched by name, so every name must be unique.');
    return;
  }

  showBusy(state.files.length === 1 ? `Reading ${names[0]}…` : `Reading ${state.files.length} files…`);
  try {
    const api = await engine();
    const report = await api.inspect(state.files.slice());
    if (seq !== state.seq) return;
    showReport(report);
  } catch (e) {
    if (seq !== state.seq) return;
    showError(state.files.length === 1 ? `${names[0]} could not be read as a disk image` : 'These files could not be read as a disk image',
      errorText(e), inspectHint(e));
  } finally {
    if (seq === state.seq) showBusy('');
  }
}

/** The report, then what it allows: converting the image, or the package's disks. */
function showReport(report) {
  renderReport(report);
  renderClouds(report);
  renderGlance(report);
  renderCheck();
  setupConvert(report);
  packages.render(report);
}

function inspectHint(e) {
  const m = errorText(e).toLowerCase();
  if (m.includes(' is empty')) return 'The file has no content. Check that the download or copy finished.';
  if (e && READ_HINTS[e.kind]) return READ_HINTS[e.kind];
  if (m.includes('truncated') || m.includes('ends inside')) return READ_HINTS.truncated;
  if (m.includes('not supplied') || m.includes('missing')) return READ_HINTS.missing;
  return READ_HINTS['not-an-image'];
}

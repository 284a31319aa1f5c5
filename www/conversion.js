// Converting the image on the page: the target options, the run with its progress and Cancel,
// the download, and the hints when it fails. One engine task runs at a time (syncBusy): buttons
// marked data-busy-off are disabled while one runs.

import { $, el } from './dom.js';
import { downloads } from './downloads.js';
import { engine } from './engine.js';
import { bytes, duration, errorText, human } from './format.js';
import { clearError, showError } from './messages.js';
import { drawProgress, frameThrottle } from './progress.js';
import { mainFile } from './render.js';
import { packages, state } from './state.js';
import { syncTasks } from './task.js';

export function setupConvert(r) {
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

export function syncCompression() {
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
export function syncBusy() {
  const main = !!state.run;
  const fixed = main || packages.converting(); // options are read when a conversion starts
  $('format').disabled = fixed;
  $('compression').disabled = fixed || $('format').value === 'raw';
  $('convert').disabled = !state.report?.convertible || packages.busy();
  for (const b of document.querySelectorAll('[data-busy-off]')) b.disabled = packages.busy();
  packages.sync();
  syncTasks();
}

/** The target the format and compression selectors name. */
export function convertOptions() {
  const format = $('format').value;
  return { format, compression: format === 'qcow2' && $('compression').value ? $('compression').value : null };
}

export function resetConvert() {
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

/** The Cancel button: the run stops at its next step and keeps nothing. */
export function cancelConvert() {
  if (!state.run) return;
  $('cancel').disabled = true;
  $('convert-status').textContent = 'Cancelling…';
  state.run.controller.abort();
}

export function abortRun() {
  if (state.run) state.run.controller.abort();
  state.run = null;
}

/** Convert with the selectors' target; `name` names the download instead of the engine's name. */
export async function startConvert({ name: wanted = null } = {}) {
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
    const name = wanted || result.name || outputName(format);
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

export function convertHint(e) {
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

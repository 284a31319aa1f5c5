// Long engine actions other than conversions (the glance checksums; a thorough consistency check
// can join them): each has a start button, a Cancel button, a progress bar and a status line,
// drawn as conversions draw theirs (progress.js). One engine task runs at a time: a task cannot
// start while anything else runs, and tells the page (onTaskChange) when it starts and ends.
//
// Adding one is a few lines where its card is rendered:
//   const check = longTask({ id: 'check', label: 'Check thoroughly', starting: 'Reading the image…',
//     run: (api, files, options) => api.check(files, options), // options: { onProgress, signal }
//     done: (findings, secs) => [el('p', { text: `${findings.length} problems` })] });
//   card.append(check.node);
//
// What a task makes (ids tests rely on): #ID-box (data-state idle/running/done/failed/cancelled)
// around #ID (the start button), #ID-cancel, #ID-progress, #ID-status and #ID-result (what
// `done` returned). resetTasks() stops them all when the file set changes.

import { el } from './dom.js';
import { engine } from './engine.js';
import { duration, errorText } from './format.js';
import { clearError, showError } from './messages.js';
import { drawProgress, frameThrottle } from './progress.js';
import { packages, state } from './state.js';

const tasks = new Set(); // the tasks on the page now
let changed = () => {};

/** What to redraw when a task starts or ends (app.js: syncBusy). */
export function onTaskChange(f) { changed = f; }

/** Show each task's buttons for what runs now: none can start while the engine is busy. */
export function syncTasks() {
  const busy = !!state.task || !!packages?.busy();
  for (const t of tasks) {
    t.go.hidden = t === state.task;
    t.go.disabled = busy;
    t.stop.hidden = t !== state.task;
  }
}

/** Forget every task: the one running stops, and the report that held them is gone. */
export function resetTasks() {
  state.task?.controller.abort();
  state.task = null;
  tasks.clear();
}

/**
 * A long action on the current files: `run(api, files, { onProgress, signal })` returns the
 * engine's promise (progress in bytes); `done(value, secs)` returns what to show once it ends.
 */
export function longTask({ id, label, starting, run, done, cancelled = 'Cancelled: nothing was kept.', failTitle = `${label} failed` }) {
  const go = el('button', { type: 'button', id, class: 'button ghost' }, label);
  const stop = el('button', { type: 'button', id: `${id}-cancel`, class: 'button danger', hidden: true }, 'Cancel');
  const bar = el('progress', { id: `${id}-progress`, max: '1', value: '0', 'aria-label': `${label}: progress`, 'aria-describedby': `${id}-status` });
  const status = el('p', { id: `${id}-status`, class: 'status', role: 'status', 'aria-live': 'polite' });
  const result = el('div', { id: `${id}-result`, class: 'task-result', hidden: true });
  const node = el('div', { id: `${id}-box`, class: 'task', 'data-state': 'idle' },
    el('div', { class: 'task-row' }, go, stop), el('div', { class: 'progress-box' }, bar, status), result);
  const task = { go, stop, node, controller: null };
  const setState = (s) => { node.dataset.state = s; };

  async function start() {
    if (state.task || packages?.busy() || !tasks.has(task)) return;
    clearError();
    task.controller = new AbortController();
    state.task = task;
    setState('running');
    result.hidden = true;
    result.replaceChildren();
    bar.removeAttribute('value'); // indeterminate until the first report
    status.textContent = starting || 'Starting…';
    stop.disabled = false;
    changed();
    const live = () => state.task === task;
    const t0 = performance.now();
    const onProgress = frameThrottle((p) => drawProgress(bar, status, p, t0), live);
    try {
      const api = await engine();
      const value = await run(api, state.files.slice(), { onProgress, signal: task.controller.signal });
      if (!live()) return;
      const secs = (performance.now() - t0) / 1000;
      bar.max = 1;
      bar.value = 1;
      setState('done');
      status.textContent = `Done in ${duration(secs)}.`;
      result.replaceChildren(...[done(value, secs)].flat());
      result.hidden = false;
    } catch (e) {
      if (!live()) return;
      bar.max = 1;
      bar.value = 0;
      if (e?.name === 'AbortError') {
        setState('cancelled');
        status.textContent = cancelled;
      } else {
        setState('failed');
        status.textContent = 'Failed.';
        showError(failTitle, errorText(e));
      }
    } finally {
      if (live()) {
        state.task = null;
        changed();
      }
    }
  }

  function cancel() {
    if (state.task !== task) return;
    stop.disabled = true;
    status.textContent = 'Cancelling…';
    task.controller.abort();
  }

  go.addEventListener('click', start);
  stop.addEventListener('click', cancel);
  tasks.add(task);
  syncTasks();
  return { node, start, cancel };
}

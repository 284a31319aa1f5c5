// Progress bars: throttled to one redraw a frame, with a status line of percent, size, rate and
// time left. Shared by the main conversion and the package view (disks.js).

import { duration, human } from './format.js';

/** Progress may arrive faster than frames: `draw` gets the latest once per frame while `live()`. */
export function frameThrottle(draw, live) {
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
 * Show `{ done, total, rate?, phase? }` (bytes) on a progress bar and its status line. Phases
 * before a conversion proper: `verifying` (the manifest digests of the disk) and
 * `decompressing` (a compressed disk copied into temporary storage; total 0 when not known).
 */
export function drawProgress(progress, status, p, t0) {
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

// The page: pick files, show the report, convert and download. All work happens in vmdisk.js
// (a Web Worker running the wasm engine); the page's modules only drive the DOM. This one wires
// them: files.js (choosing and reading files), render.js (the report), conversion.js (convert,
// progress, cancel, download), disks.js (a package's disks, their conversions and the integrity
// check), clouds.js (the cloud verdicts), glance.js (what to declare to glance, the checksums),
// task.js (long actions with progress), with words.js, format.js, dom.js, messages.js,
// progress.js, engine.js and state.js.
//
// Element ids other tools rely on: files, report (data-json), format, compression, convert, cancel,
// progress, error. `window.vmdisk` exposes { inspect, convert, verify, ... } once the engine module
// has loaded (engine.js).

import { cancelConvert, convertHint, convertOptions, startConvert, syncBusy, syncCompression } from './conversion.js';
import { createPackages } from './disks.js';
import { $, el } from './dom.js';
import { downloads, guardDownloads } from './downloads.js';
import { engine } from './engine.js';
import { inspectCurrent, setFiles } from './files.js';
import { bytes, duration, errorText, human } from './format.js';
import { clearError, showError } from './messages.js';
import { drawProgress, frameThrottle } from './progress.js';
import { redrawClouds } from './clouds.js';
import { guestTable, renderFinding, renderObject, renderSafety } from './render.js';
import { packages, setPackages, state } from './state.js';
import { onTaskChange } from './task.js';
import { FORMATS } from './words.js';

function wire() {
  $('files').addEventListener('change', (e) => { setFiles(e.target.files); e.target.value = ''; });
  $('add-files').addEventListener('change', (e) => { setFiles(e.target.files, { add: true }); e.target.value = ''; });
  $('clear').addEventListener('click', () => { state.files = []; inspectCurrent(); $('files').focus(); });
  $('format').addEventListener('change', () => { syncCompression(); packages.sync(); });
  $('compression').addEventListener('change', () => packages.sync());
  $('convert').addEventListener('click', () => startConvert());
  $('cancel').addEventListener('click', cancelConvert);

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

setPackages(createPackages({
  $, el, human, bytes, duration, state, engine, errorText, showError, clearError, convertHint,
  renderFinding, renderObject, renderSafety, drawProgress, frameThrottle, convertOptions, syncBusy, FORMATS, downloads, guestTable, redrawClouds,
}));

onTaskChange(syncBusy);
guardDownloads();
wire();
engine().catch((e) => showError('vmdisk could not start', errorText(e),
  'Reload the page. If it keeps failing, this browser may not support WebAssembly modules in workers.'));

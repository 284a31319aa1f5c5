// vmdisk in the browser: the main-thread API. Everything runs in one dedicated worker
// (worker.js) started on first use; files never leave the machine. Types: vmdisk.d.ts.
//
//   import { inspect, convert } from './vmdisk.js';
//   const report = await inspect(input.files);            // what `vmdisk info --json` prints
//   const out = await convert(input.files, { format: 'qcow2', compression: 'zstd',
//     onProgress: ({ done, total, rate }) => ..., signal: controller.signal });
//   link.href = URL.createObjectURL(out.file); link.download = out.name;
//
// Failures reject with an Error whose message is the CLI's one line ("corrupt image: ...") and
// whose `kind` names the class ("io", "truncated", "corrupt", "unsupported", "not-an-image",
// "missing", "invalid"); an aborted conversion rejects with a DOMException named AbortError.

import { madeWorker } from './worker-maker.js';

let worker = null;
let seq = 0;
const calls = new Map(); // id -> { resolve, reject, progress? }

function getWorker() {
  if (worker) return worker;
  // Written as bundlers look for it (Vite, webpack): they emit the worker and its wasm. A maker
  // (vmdisk/inline's) starts one from a Blob instead.
  worker = madeWorker() ?? new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = ({ data }) => {
    const call = calls.get(data.id);
    if (!call) return;
    if (data.type === 'progress') {
      call.progress?.(data.done, data.total, data.phase);
      return;
    }
    if (data.type === 'rows') {
      call.rows?.(data.rows);
      return;
    }
    calls.delete(data.id);
    if (data.type === 'result') call.resolve(data.value);
    else call.reject(toError(data.error));
  };
  worker.onerror = (e) => {
    // The worker could not load (or died): fail everything in flight, start afresh next time.
    e.preventDefault?.();
    const err = new Error(`the vmdisk engine failed to start: ${e.message || 'the worker did not load (worker.js and pkg/vmdisk_bg.wasm must be served beside the bundle; vmdisk/inline needs worker-src blob: in a Content-Security-Policy)'}`);
    for (const call of calls.values()) call.reject(err);
    calls.clear();
    worker.terminate();
    worker = null;
  };
  return worker;
}

function abortError() {
  return new DOMException('cancelled', 'AbortError');
}

function toError(e) {
  if (e?.name === 'AbortError') return abortError();
  const err = new Error(e?.message ?? String(e));
  if (e?.kind) err.kind = e.kind;
  if (e?.detail !== undefined) err.detail = e.detail;
  return err;
}

/** A FileList, an array of Files, or one File, as an array. */
function fileArray(files) {
  if (files instanceof Blob) return [files];
  return Array.from(files ?? []);
}

function request(type, fields, progress) {
  const id = ++seq;
  const w = getWorker();
  const promise = new Promise((resolve, reject) => calls.set(id, { resolve, reject, progress }));
  w.postMessage({ id, type, ...fields });
  return { id, promise };
}

/** Identify and check an image set: resolves to the Report of `vmdisk info --json`. */
export function inspect(files) {
  return request('inspect', { files: fileArray(files) }).promise;
}

/**
 * Where every guest byte lives: the rows of `vmdisk map --json`. With `onRows(rows)`, rows come
 * in batches as the map is walked (a fragmented image has millions) and the promise resolves to
 * their count.
 */
export function map(files, { onRows } = {}) {
  if (!onRows) return request('map', { files: fileArray(files) }).promise;
  const { id, promise } = request('map', { files: fileArray(files), stream: true });
  calls.get(id).rows = (rows) => {
    try {
      onRows(rows);
    } catch (e) {
      setTimeout(() => { throw e; });
    }
  };
  return promise;
}

/**
 * Convert an image set to qcow2 or raw. Resolves as `{ file, name, size, format, parts,
 * spilledBytes, sources, ... }`. `file` is composed: slices of the picked files for the data the
 * output keeps unchanged, generated tables, zero runs, and a spill file in the origin-private
 * file system for bytes that had to be produced (`spilledBytes`); it stays readable until
 * `release(result)`, until the page closes, or until a picked file changes (see `readable`). With `output` (a FileSystemFileHandle, e.g. from
 * showSaveFilePicker) it is written there instead, and that file is left as it was on failure.
 */
export function convert(files, { format = 'qcow2', compression = null, clusterSize, compat, disk, output, maxParts, onProgress, signal } = {}) {
  if (signal?.aborted) return Promise.reject(abortError());
  const options = { format, compression: compression || null };
  if (output) options.output = output;
  if (disk !== undefined && disk !== null) options.disk = disk;
  if (clusterSize !== undefined) options.clusterSize = clusterSize;
  if (compat !== undefined) options.compat = compat;
  if (maxParts !== undefined) options.maxParts = maxParts;

  // Rate: bytes per second over the last few seconds (steadier than per report), per phase.
  const samples = [];
  let lastPhase = 'converting';
  const progress = (done, total, phase = 'converting') => {
    const now = performance.now();
    if (phase !== lastPhase) {
      samples.length = 0;
      samples.push([now, 0]);
      lastPhase = phase;
    }
    samples.push([now, done]);
    while (samples.length > 2 && now - samples[0][0] > 3000) samples.shift();
    const [t0, d0] = samples[0];
    const rate = now > t0 ? ((done - d0) * 1000) / (now - t0) : 0;
    try {
      onProgress?.({ done, total, rate, phase });
    } catch (e) {
      setTimeout(() => { throw e; }); // the caller's bug: report it, keep converting
    }
  };
  const started = performance.now();
  samples.push([started, 0]);
  const { id, promise } = request('convert', { files: fileArray(files), options }, progress);
  const onAbort = () => worker?.postMessage({ id, type: 'cancel' });
  signal?.addEventListener('abort', onAbort, { once: true });
  return promise.then(
    (result) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) {
        // Finished just as it was aborted: abort wins, and the output goes.
        release(result);
        throw abortError();
      }
      return result;
    },
    (e) => {
      signal?.removeEventListener('abort', onAbort);
      throw signal?.aborted ? abortError() : e;
    },
  );
}

/**
 * Read a package through and check it against itself: every manifest digest, every compressed
 * stream's own checksums. Resolves to the findings (as `vmdisk info` adds them to its report:
 * `digest-mismatch`, `manifest`, `corrupt`, `truncated`); [] for a file that is not a package.
 * The array also carries `clouds`: the report's cloud verdicts judged again with those findings,
 * as `vmdisk info` judges them. `onProgress({ done, total })` in bytes; `signal` cancels (an
 * AbortError).
 */
export function verify(files, { onProgress, signal } = {}) {
  return readThrough('verify', files, { onProgress, signal })
    .then(({ findings, clouds }) => Object.assign(findings, { clouds }));
}

/**
 * The full consistency check `vmdisk check` runs, in the manner of `qemu-img check`: qcow2
 * refcounts rebuilt and compared, tables in bounds, compressed clusters decoded; a package's
 * digests and streams verified (unless `verify: false`) and each disk checked. Resolves to the
 * CheckResult `vmdisk check --json` prints (qemu-img check's JSON shape): a damaged image is a
 * result with corruptions, not a rejection. `exit-code` is the status `vmdisk check` (and
 * qemu-img check) exits with: 0 clean, 1 the check could not run, 2 corruptions, 3 leaks only.
 * `onProgress({ done, total })` in bytes of the file checked; `signal` cancels (an AbortError).
 */
export function check(files, { verify = true, onProgress, signal } = {}) {
  return readThrough('check', files, { onProgress, signal }, { options: { verify: verify !== false } });
}

/**
 * The checksums glance records of an upload, as `vmdisk info --hash` adds them: MD5 and SHA-512
 * of the main file (for a package, the package file), in one read. Resolves to `{ checksum,
 * os_hash_algo: 'sha512', os_hash_value }` (lowercase hex). `onProgress({ done, total })` in
 * bytes; `signal` cancels (an AbortError).
 */
export function hash(files, { onProgress, signal } = {}) {
  return readThrough('hash', files, { onProgress, signal });
}

/** A request that reads the files through, with progress and cancellation (verify, hash, check). */
function readThrough(type, files, { onProgress, signal }, fields = {}) {
  if (signal?.aborted) return Promise.reject(abortError());
  const { id, promise } = request(type, { files: fileArray(files), ...fields }, (done, total) => {
    try {
      onProgress?.({ done, total });
    } catch (e) {
      setTimeout(() => { throw e; });
    }
  });
  const onAbort = () => worker?.postMessage({ id, type: 'cancel' });
  signal?.addEventListener('abort', onAbort, { once: true });
  return promise.then(
    (value) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) throw abortError();
      return value;
    },
    (e) => {
      signal?.removeEventListener('abort', onAbort);
      throw signal?.aborted ? abortError() : e;
    },
  );
}

/**
 * Resolve when `result.file` can still be saved. An output is composed of slices of the picked
 * files and read only when it is saved, and Chromium fails every read of a File that changed on
 * disk after it was picked: check before a download starts, which would otherwise fail in the
 * browser's download list. Rejects with a one-line Error (kind 'io') naming the file.
 */
export async function readable(result) {
  for (const f of result?.sources ?? []) {
    try {
      await f.slice(0, Math.min(1, f.size)).arrayBuffer();
      if (f.size > 1) await f.slice(f.size - 1).arrayBuffer();
    } catch {
      const err = new Error(`${f.name} changed or became unreadable after it was picked: pick it again`);
      err.kind = 'io';
      throw err;
    }
  }
}

/** Delete a conversion's output from the origin-private file system (its `file` becomes unreadable). */
export function release(result) {
  if (!worker || !result?.opfsName) return Promise.resolve();
  return request('release', { name: result.opfsName }).promise;
}

let codes = null;
/**
 * Every finding code the engine can report, with its title and plain-words explanation:
 * `[{code, title, explanation}]` (the table the page shows above each finding's message).
 */
export function findingCodes() {
  codes ??= request('codes', {}).promise.catch((e) => { codes = null; throw e; });
  return codes;
}

/** The engine worker's wasm memory now, and the largest a compression sub-worker's reached. */
export function memory() {
  return request('memory', {}).promise;
}

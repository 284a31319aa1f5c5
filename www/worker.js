// The vmdisk engine's dedicated worker: loads the wasm build (www/pkg, made by `./dev build`),
// reads the picked files through Blob slices, writes outputs into the origin-private file
// system (OPFS) through a sync access handle, and spreads compression over sub-workers
// (compress-worker.js), one wasm instance each.
//
// Requests (from vmdisk.js): {id, type: 'inspect'|'map', files}, {id, type: 'convert', files,
// options} (options.output: a FileSystemFileHandle to write instead of an OPFS file;
// options.disk: a package's disk), {id, type: 'verify' | 'hash', files}, {id, type: 'check',
// files, options} (options.verify), {id, type: 'cancel'} (of a convert, verify, hash or check),
// {id, type: 'release', name}, {id, type: 'memory'}.
//
// A compressed disk that its driver reads at random (a qcow2 inside xz) is decompressed into a
// scratch file "<disk>.vmdisk-scratch" in OPFS first (to convert or check it), removed when the
// request ends.
// Replies: {id, type: 'progress', done, total, phase}, {id, type: 'result', value},
// {id, type: 'error', error: {name, message, kind, detail}}.
//
// Outputs are composed (see composeFile): a File made of slices of the picked files for the data
// the output stores unchanged, generated tables, and zero runs; only bytes that had to be
// produced (inflated clusters, compressed output) go to a spill file in OPFS. So a conversion
// writes little, and the origin's storage quota does not bound its output.
//
// OPFS: outputs (spill files) are files in the root directory, named after the main input ("disk.qcow2",
// "disk (2).qcow2" when taken). Each is held by a Web Lock ("vmdisk-output:<name>") for as
// long as this worker lives; at start-up the worker deletes every *.qcow2 / *.raw file in the
// root that no live worker holds (outputs of closed pages, or of a crash). A failed or
// cancelled conversion deletes its file at once.
import init, * as wasm from './pkg/vmdisk.js';

const OUTPUT = /\.(qcow2|raw|vmdisk-scratch)$/i; // outputs, and scratch copies of compressed disks
const lockName = (name) => `vmdisk-output:${name}`;

// Started from a Blob URL (by vmdisk/inline, the npm package's inline.js, for bundlers that emit
// no workers or wasm), nothing lies beside this worker: its first message brings the wasm bytes
// and the compression worker's source, {type: 'init', wasm, compressWorker}.
const INLINE = import.meta.url.startsWith('blob:');
let resolveInit = null;
const initMessage = INLINE ? new Promise((resolve) => { resolveInit = resolve; }) : null;
let compressWorkerUrl = null; // inline only: compress-worker.js (bundled) as a Blob URL

let memory = null;
const ready = (async () => {
  const module = INLINE ? await WebAssembly.compile((await initMessage).wasm) : await fetchWasm();
  const exports = await init({ module_or_path: module });
  memory = exports.memory;
  return module;
})();

/** The wasm beside this file (www/pkg, or wherever the bundler emitted it), compiled. */
async function fetchWasm() {
  const url = new URL('./pkg/vmdisk_bg.wasm', import.meta.url);
  try {
    return await WebAssembly.compileStreaming(fetch(url));
  } catch {
    // A server that does not say application/wasm.
    const response = await fetch(url);
    if (!response.ok) throw new Error(`could not load ${url}: HTTP ${response.status}`);
    return WebAssembly.compile(await response.arrayBuffer());
  }
}

// ---------------------------------------------------------------------------------------------
// Compression sub-workers.

const IDLE_MS = 20_000;
// A sub-worker whose wasm memory grew past this is ended once idle (wasm memory never shrinks)
// and a fresh one takes its place: what a batch needs is a few times its 32 MiB at most.
const SUB_MEMORY_CAP = 128 << 20;

class Pool {
  constructor(module, size) {
    this.module = module;
    this.size = size;
    this.workers = [];
    this.seq = 0;
    this.maxMemory = 0;
    this.retired = 0; // sub-workers ended for their memory
    this.idle = null;
  }

  spawn() {
    const w = compressWorkerUrl
      ? new Worker(compressWorkerUrl, { type: 'module' })
      : new Worker(new URL('./compress-worker.js', import.meta.url), { type: 'module' });
    w.pending = new Map();
    w.onmessage = ({ data }) => {
      const p = w.pending.get(data.id);
      if (!p) return;
      w.pending.delete(data.id);
      if (data.memory) {
        w.memory = data.memory;
        this.maxMemory = Math.max(this.maxMemory, data.memory);
        if (data.memory > SUB_MEMORY_CAP && !w.pending.size) {
          w.terminate();
          this.workers = this.workers.filter((x) => x !== w);
          this.retired++;
        }
      }
      if (data.error) p.reject(Object.assign(new Error(data.error.message), data.error));
      else p.resolve(data.reply);
      this.settle();
    };
    w.onerror = (e) => {
      e.preventDefault?.();
      const err = new Error(`a compression worker failed: ${e.message || 'could not start'}`);
      for (const p of w.pending.values()) p.reject(err);
      w.pending.clear();
      w.terminate();
      this.workers = this.workers.filter((x) => x !== w);
    };
    w.postMessage({ type: 'init', module: this.module });
    return w;
  }

  /** Send one part of a batch to the least busy sub-worker; its buffers are transferred. */
  dispatch(msg) {
    clearTimeout(this.idle);
    if (this.workers.length < this.size) this.workers.push(this.spawn());
    const w = this.workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = ++this.seq;
    const transfer = [msg.data, msg.lens, msg.codecs, msg.outLens].filter(Boolean).map((a) => a.buffer);
    return new Promise((resolve, reject) => {
      w.pending.set(id, { resolve, reject });
      w.postMessage({ id, msg }, transfer);
    });
  }

  /** Sub-workers idle for a while are ended: each holds a wasm memory of its own. */
  settle() {
    if (this.workers.some((w) => w.pending.size)) return;
    clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      for (const w of this.workers) w.terminate();
      this.workers = [];
    }, IDLE_MS);
  }
}

let pool = null;
function getPool(module) {
  pool ??= new Pool(module, Math.max(1, navigator.hardwareConcurrency || 1));
  return { workers: pool.size, dispatch: (msg) => pool.dispatch(msg) };
}

// ---------------------------------------------------------------------------------------------
// Outputs in OPFS.

const held = new Map(); // OPFS file name -> release its lock

/** Take the Web Lock of an output name if nobody holds it: resolves to its release, or null. */
function claim(name) {
  if (!navigator.locks) return Promise.resolve(() => {});
  return new Promise((resolve, reject) => {
    navigator.locks.request(lockName(name), { ifAvailable: true }, (lock) => {
      if (!lock) return resolve(null);
      return new Promise((release) => resolve(release));
    }).catch(reject);
  });
}

const swept = (async () => {
  if (!navigator.locks || !navigator.storage?.getDirectory) return;
  try {
    const root = await navigator.storage.getDirectory();
    const locked = new Set((await navigator.locks.query()).held.map((l) => l.name));
    for await (const [name, handle] of root.entries()) {
      if (handle.kind === 'file' && OUTPUT.test(name) && !locked.has(lockName(name))) {
        await root.removeEntry(name).catch(() => {}); // open in another tab: leave it
      }
    }
  } catch {
    // No OPFS here: conversions will say so.
  }
})();

/** "disk.vmdk" -> "disk.qcow2"; the same name -> "disk-converted.qcow2". */
function outputName(input, format) {
  const stem = input.replace(/\.(qcow2|qcow|img|raw|bin|vmdk|vdi|vhdx?|iso|qed|hdd|ova|dd)$/i, '') || 'disk';
  const out = `${stem}.${format}`;
  return out === input ? `${stem}-converted.${format}` : out;
}

async function createOutput(root, wanted) {
  const dot = wanted.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [wanted.slice(0, dot), wanted.slice(dot)] : [wanted, ''];
  for (let i = 1; i < 10_000; i++) {
    const name = i === 1 ? wanted : `${stem} (${i})${ext}`;
    if (held.has(name)) continue;
    const release = await claim(name);
    if (!release) continue;
    const exists = await root.getFileHandle(name).then(() => true, () => false);
    if (exists) {
      release();
      continue;
    }
    held.set(name, release);
    return { name, handle: await root.getFileHandle(name, { create: true }) };
  }
  throw new Error(`no free output name for ${wanted}`);
}

async function removeOutput(root, name) {
  await root.removeEntry(name).catch(() => {});
  held.get(name)?.();
  held.delete(name);
}

/**
 * Scratch files for one request: `make(name)` is what the engine calls for a compressed disk it
 * must decompress first (an OPFS file's sync access handle); `remove()` closes and deletes them.
 */
function scratchFiles() {
  const made = []; // { root, name, access }
  return {
    async make(name) {
      const root = await navigator.storage.getDirectory();
      const s = await createOutput(root, `${name}.vmdisk-scratch`);
      const scratch = { root, name: s.name, access: await s.handle.createSyncAccessHandle() };
      made.push(scratch);
      return scratch.access;
    },
    async remove() {
      for (const s of made) {
        try { s.access.close(); } catch { /* already closed */ }
        await removeOutput(s.root, s.name);
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Composed outputs.

const ZERO_BLOCK = 4 << 20;
const ZERO_LEVEL = 1 << 30;
let zeroBlock = null;
let zeroLevel = null;

/** Zero runs as slices of one shared zero Blob (a GiB of references to one 4 MiB block). */
function zeroParts(len, out) {
  zeroBlock ??= new Blob([new Uint8Array(ZERO_BLOCK)]);
  if (len <= ZERO_BLOCK) return out.push(zeroBlock.slice(0, len));
  zeroLevel ??= new Blob(Array(ZERO_LEVEL / ZERO_BLOCK).fill(zeroBlock));
  for (let at = 0; at < len; at += ZERO_LEVEL) out.push(zeroLevel.slice(0, Math.min(ZERO_LEVEL, len - at)));
}

/**
 * The engine's parts as one File: Blob slices of the inputs and Uint8Arrays of generated bytes
 * as they are, a number for that many zeros, [start, end] for a range of the spill file.
 */
function composeFile(parts, spill, name) {
  const blobParts = [];
  for (const p of parts) {
    if (typeof p === 'number') zeroParts(p, blobParts);
    else if (Array.isArray(p)) blobParts.push(spill.slice(p[0], p[1]));
    else blobParts.push(p);
  }
  return new File(blobParts, name, { type: 'application/octet-stream' });
}

// ---------------------------------------------------------------------------------------------
// Requests.

const jobs = new Map(); // convert id -> { cancelled }
const post = (msg) => self.postMessage(msg);

function errorOf(e, cancelled) {
  if (cancelled || e?.name === 'AbortError') {
    return { name: 'AbortError', message: 'cancelled', kind: 'cancelled', detail: '' };
  }
  return {
    name: e?.name || 'Error',
    message: String(e?.message ?? e),
    kind: e?.kind ?? (e?.name === 'QuotaExceededError' ? 'io' : undefined),
    detail: e?.detail,
  };
}

async function convert(id, files, { output, ...options }) {
  const job = { cancelled: false };
  jobs.set(id, job);
  let root = null;
  let out = null;
  let access = null; // the OPFS file's sync access handle
  let writable = null; // or the writable stream of a file the user picked
  const scratches = scratchFiles(); // of this conversion
  try {
    const module = await ready;
    await swept;
    const format = options?.format ?? 'qcow2';
    // Called by the engine once the image is known to be readable.
    const makeOutput = async (info) => {
      if (output) {
        // A file the user picked (showSaveFilePicker): written through a swap file that
        // becomes the file on close, and is dropped on abort.
        writable = await output.createWritable();
        return writable;
      }
      // Composed; the spill file is made when the engine first has bytes for it.
      return {
        compose: async () => {
          if (!navigator.storage?.getDirectory) throw new Error('this browser has no origin-private file system (OPFS) for the output');
          root ??= await navigator.storage.getDirectory();
          out = await createOutput(root, outputName(info.input, format));
          access = await out.handle.createSyncAccessHandle();
          return access;
        },
        ...(options?.maxParts ? { maxParts: options.maxParts } : {}),
      };
    };
    let last = 0;
    let lastPhase = null;
    const onProgress = (done, total, phase) => {
      if (job.cancelled) return false;
      const now = performance.now();
      if (now - last >= 50 || done === total || phase !== lastPhase) {
        last = now;
        lastPhase = phase;
        post({ id, type: 'progress', done, total, phase });
      }
      return true;
    };
    const started = performance.now();
    const info = await wasm.convert(files, options, makeOutput, onProgress, getPool(module), scratches.make);
    writable = null; // closed by the engine
    access?.close();
    access = null;
    if (job.cancelled && !output) throw new DOMException('cancelled', 'AbortError');
    const name = outputName(info.input, info.format);
    const spill = out ? await out.handle.getFile() : null;
    const file = output ? await output.getFile() : composeFile(info.parts, spill, name);
    post({
      id,
      type: 'result',
      value: {
        file,
        name,
        size: file.size,
        parts: info.parts?.length ?? 0,
        spilledBytes: spill?.size ?? 0,
        // What the output reads when it is saved: the page checks they are still readable.
        sources: output ? [] : files,
        format: info.format,
        input: info.input,
        virtualSize: info.virtualSize,
        opfsName: out?.name ?? null,
        seconds: (performance.now() - started) / 1000,
        wasmMemoryBytes: memory.buffer.byteLength,
        poolMemoryBytes: pool?.maxMemory ?? 0,
        poolWorkers: pool?.workers.length ?? 0,
        // Each live sub-worker's wasm memory now.
        poolWorkerMemory: pool?.workers.map((w) => w.memory ?? 0) ?? [],
      },
    });
  } catch (e) {
    try { access?.close(); } catch { /* already closed */ }
    if (out) await removeOutput(root, out.name);
    await writable?.abort().catch(() => {});
    post({ id, type: 'error', error: errorOf(e, job.cancelled) });
  } finally {
    await scratches.remove();
    jobs.delete(id);
  }
}

/**
 * A request that reads the files through with progress and can be cancelled: `run(files,
 * onProgress)` is the engine's function (verify, hash); its value is the reply.
 */
async function readThrough(id, files, run) {
  const job = { cancelled: false };
  jobs.set(id, job);
  try {
    await ready;
    let last = 0;
    const onProgress = (done, total, phase) => {
      if (job.cancelled) return false;
      const now = performance.now();
      if (now - last >= 50 || done === total) {
        last = now;
        post({ id, type: 'progress', done, total, phase });
      }
      return true;
    };
    post({ id, type: 'result', value: await run(files, onProgress) });
  } catch (e) {
    post({ id, type: 'error', error: errorOf(e, job.cancelled) });
  } finally {
    jobs.delete(id);
  }
}

self.onmessage = async ({ data }) => {
  const { id, type } = data;
  if (type === 'init' && resolveInit) {
    compressWorkerUrl = URL.createObjectURL(new Blob([data.compressWorker], { type: 'text/javascript' }));
    return resolveInit(data);
  }
  if (type === 'convert') return convert(id, data.files, data.options);
  if (type === 'verify') return readThrough(id, data.files, (f, p) => wasm.verify(f, p));
  if (type === 'hash') return readThrough(id, data.files, (f, p) => wasm.hash(f, p));
  if (type === 'check') {
    return readThrough(id, data.files, async (f, p) => {
      await swept;
      const scratches = scratchFiles();
      try {
        return await wasm.check(f, data.options ?? {}, p, scratches.make);
      } finally {
        await scratches.remove();
      }
    });
  }
  if (type === 'cancel') {
    const job = jobs.get(id);
    if (job) job.cancelled = true;
    return;
  }
  try {
    let value;
    if (type === 'inspect') {
      await ready;
      value = await wasm.inspect(data.files);
    } else if (type === 'map') {
      await ready;
      // With onRows, rows travel in batches as the map is walked.
      value = await wasm.map(data.files, data.stream ? (rows) => post({ id, type: 'rows', rows }) : undefined);
    } else if (type === 'release') {
      if (held.has(data.name)) await removeOutput(await navigator.storage.getDirectory(), data.name);
    } else if (type === 'codes') {
      await ready;
      value = wasm.findingCodes();
    } else if (type === 'memory') {
      await ready;
      value = { wasmMemoryBytes: memory.buffer.byteLength, poolMemoryBytes: pool?.maxMemory ?? 0 };
    } else {
      throw new Error(`unknown request ${type}`);
    }
    post({ id, type: 'result', value });
  } catch (e) {
    post({ id, type: 'error', error: errorOf(e) });
  }
};

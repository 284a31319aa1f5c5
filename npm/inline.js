// vmdisk/inline: the API of `vmdisk` (vmdisk.js itself, re-exported: one copy), with the engine
// worker, its compression worker and the wasm carried inside this JavaScript, for bundlers that
// emit neither workers nor wasm (esbuild). inline-assets.js is made by npm/pack.mjs: worker.js
// and compress-worker.js each bundled into a string, and the wasm in base64. The worker starts
// from a Blob URL and gets the wasm bytes and compress-worker's source in its first message.
// Importing this module also makes `vmdisk/element` use this worker (it shares vmdisk.js).
import { COMPRESS_WORKER, WASM_BASE64, WORKER } from './inline-assets.js';
import { makeWorkerWith } from './worker-maker.js';

export * from './vmdisk.js';

let workerUrl = null;

makeWorkerWith(() => {
  workerUrl ??= URL.createObjectURL(new Blob([WORKER], { type: 'text/javascript' }));
  const worker = new Worker(workerUrl, { type: 'module' });
  const wasm = decode(WASM_BASE64);
  worker.postMessage({ type: 'init', wasm, compressWorker: COMPRESS_WORKER }, [wasm.buffer]);
  return worker;
});

/** Base64 to bytes: natively where the browser can (Uint8Array.fromBase64), else through atob. */
function decode(base64) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(base64);
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

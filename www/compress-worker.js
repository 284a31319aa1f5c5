// A compression sub-worker: its own wasm instance (the module compiled once by worker.js and
// handed over), answering one batch at a time. Batches and replies travel as transferred
// ArrayBuffers; see crate/src/wasm/pool.rs for the message shapes.
import init, { compress_batch, decompress_batch } from './pkg/vmdisk.js';

let ready = null;
let memory = null;

self.onmessage = async ({ data }) => {
  if (data.type === 'init') {
    ready = init({ module_or_path: data.module }).then((exports) => { memory = exports.memory; });
    return;
  }
  const { id, msg } = data;
  try {
    await ready;
    let reply;
    let transfer;
    if (msg.op === 'compress') {
      reply = compress_batch(msg.codec, msg.limit, msg.data, msg.lens);
      transfer = [reply.data.buffer, reply.lens.buffer];
    } else if (msg.op === 'decompress') {
      reply = { data: decompress_batch(msg.codecs, msg.data, msg.lens, msg.outLens) };
      transfer = [reply.data.buffer];
    } else {
      throw new Error(`unknown pool operation ${msg.op}`);
    }
    self.postMessage({ id, reply, memory: memory.buffer.byteLength }, transfer);
  } catch (e) {
    self.postMessage({ id, error: { message: String(e?.message ?? e), kind: e?.kind, detail: e?.detail } });
  }
};

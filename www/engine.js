// The disk engine (vmdisk.js and its worker), loaded on first use; it becomes `window.vmdisk`.

import { errorText } from './format.js';
import { state } from './state.js';

let enginePromise = null;
export function engine() {
  if (!enginePromise) {
    enginePromise = import('./vmdisk.js').then(async (m) => {
      state.api = { inspect: m.inspect, convert: m.convert, verify: m.verify, hash: m.hash, check: m.check, release: m.release, map: m.map, memory: m.memory, readable: m.readable, findingCodes: m.findingCodes };
      state.codes = new Map((await m.findingCodes()).map((c) => [c.code, c]));
      window.vmdisk = state.api;
      return state.api;
    }, (e) => {
      enginePromise = null;
      throw new Error(`the disk engine could not be loaded (${errorText(e)})`);
    });
  }
  return enginePromise;
}

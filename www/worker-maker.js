// How vmdisk.js starts its engine worker. Unless told otherwise it starts worker.js beside it,
// itself, in the `new Worker(new URL(...))` form that bundlers look for; vmdisk/inline (the npm
// package's inline.js, for bundlers that emit no workers or wasm) sets a maker here that starts
// the worker from a Blob instead. Internal: not one of the package's exports.

let maker = null;

/** From now on, vmdisk.js starts its worker with `make()` (set before the first call). */
export function makeWorkerWith(make) {
  maker = make;
}

/** The worker the maker starts, or null: then vmdisk.js starts worker.js itself. */
export function madeWorker() {
  return maker ? maker() : null;
}

// What the page holds between events, shared by its modules.

export const state = {
  api: null, // { inspect, convert } from vmdisk.js
  files: [], // File objects of the current image set
  report: null,
  codes: null, // finding code -> { code, title, explanation }, the engine's table
  seq: 0, // bumps on every new file set: late answers for an old set are dropped
  run: null, // { controller } while a conversion runs
  task: null, // the long task running (task.js): checksums, ...
  url: null, // object URL of the last result
  result: null, // the last conversion's result: its output stays in OPFS until released
  checked: [], // findings of the last integrity check of this file set (a package's verify())
  checkedAll: false, // whether that check ran to its end
};

/** The package view (disks.js). app.js creates it at start-up, since it is handed helpers from the other modules. */
export let packages = null;
export function setPackages(view) { packages = view; }

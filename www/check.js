// The thorough check: `vmdisk check` (qemu-img check's consistency check) of the current files,
// a long task (task.js) with progress and cancel, and its result in plain words: no errors, or
// how many corruptions and leaked clusters, the problem lines, and the exit status qemu-img
// check would give.
//
// Ids tests rely on: check-card, check (the button; see task.js for the rest),
// check-summary (data-exit-code, data-corruptions, data-leaks, data-check-errors: the totals
// over a package's disks), check-problems (li per problem line).

import { $, el } from './dom.js';
import { longTask } from './task.js';

/** The totals of a result and its disks: [check errors, corruptions, leaks]. */
function totals(r) {
  return (r.disks || []).map(totals).reduce((a, d) => a.map((n, i) => n + d[i]),
    [r['check-errors'] || 0, r.corruptions || 0, r.leaks || 0]);
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

// What qemu-img check's exit status means (qemu-img.c img_check), for those who script it.
const EXIT_WORDS = {
  0: 'the image is clean',
  1: 'the check could not run in full',
  2: 'the image is corrupt',
  3: 'only leaked clusters: harmless wasted space, which qemu-img check -r leaks reclaims',
};

/** A result's problem lines, a package's disks' under their names. */
function problemLines(r, prefix = '') {
  const own = (r.problems || []).map((p) => `${prefix}${p}`);
  const more = r['problems-not-shown'] ? [`${prefix}… and ${plural(r['problems-not-shown'], 'more problem')}`] : [];
  return [...own, ...more, ...(r.disks || []).flatMap((d) => problemLines(d, `${d.filename}: `))];
}

/** The result in words: a headline, the exit status, the problems. */
export function checkResult(r) {
  const [errors, corruptions, leaks] = totals(r);
  const code = r['exit-code'] ?? 0;
  const found = [
    corruptions ? plural(corruptions, 'corruption') : '',
    leaks ? plural(leaks, 'leaked cluster') : '',
    errors ? plural(errors, 'part that could not be checked', 'parts that could not be checked') : '',
  ].filter(Boolean);
  const headline = found.length ? `Found ${found.join(', ')}.` : 'No errors were found.';
  const lines = problemLines(r);
  const stats = [
    r['total-clusters'] ? `${r['allocated-clusters'] || 0} of ${r['total-clusters']} clusters allocated` : '',
    r['compressed-clusters'] ? `${r['compressed-clusters']} compressed` : '',
    r['fragmented-clusters'] ? `${r['fragmented-clusters']} fragmented` : '',
  ].filter(Boolean).join(', ');
  return [
    el('p', {
      id: 'check-summary', class: `check-summary ${code === 0 ? 'ok' : code === 3 ? 'warn' : 'bad'}`,
      'data-exit-code': String(code), 'data-corruptions': String(corruptions), 'data-leaks': String(leaks),
      'data-check-errors': String(errors),
    }, el('strong', { text: headline }), ' ',
    `qemu-img check would exit with ${code}: ${EXIT_WORDS[code] || 'see the problems'}.`),
    stats ? el('p', { class: 'muted', text: `${stats[0].toUpperCase()}${stats.slice(1)}.` }) : null,
    lines.length ? el('ul', { id: 'check-problems', class: 'check-problems' },
      lines.map((line) => el('li', {}, el('code', { text: line })))) : null,
  ];
}

/** The card for a report: shown for every image set the engine opened. */
export function renderCheck() {
  const task = longTask({
    id: 'check',
    label: 'Check thoroughly',
    starting: 'Reading the image…',
    run: (api, files, options) => api.check(files, options),
    done: checkResult,
    cancelled: 'Cancelled: the check did not finish, so nothing was concluded.',
    failTitle: 'The check could not run',
  });
  $('check-area').replaceChildren(task.node);
  $('check-card').hidden = false;
}

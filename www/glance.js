// The glance block: what to declare when uploading the file to OpenStack's image service (the
// report's `glance` record: disk_format, container_format, sizes, min_disk) and, on request, the
// checksums glance computes while it stores the upload (hash(), a long task with progress).
//
// Ids tests rely on: glance-box, glance (dd[data-key=NAME][data-value] per value), hash (the
// button; see task.js for the rest), hash-checksum, hash-os_hash_algo, hash-os_hash_value.

import { $, el } from './dom.js';
import { bytes, human } from './format.js';
import { longTask } from './task.js';

/** A button that copies `text`; it says so, or says what went wrong. */
function copyButton(text, what) {
  const b = el('button', { type: 'button', class: 'button ghost small copy', 'aria-label': `Copy ${what}` }, 'Copy');
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = 'Copied';
    } catch {
      b.textContent = 'Select and copy it';
    }
    setTimeout(() => { b.textContent = 'Copy'; }, 2000);
  });
  return b;
}

function row(key, label, value, shown) {
  return [el('dt', {}, label, ' ', el('code', { text: key })),
    el('dd', { 'data-key': key, 'data-value': String(value) }, shown ?? String(value))];
}

const sized = (n) => el('span', {}, bytes(n), Number(n) >= 1024 ? el('span', { class: 'muted', text: ` (${human(n)})` }) : null);

/** The upload command with these values, for the `openstack` client. */
function command(g, name) {
  const quoted = /^[\w.+-]+$/.test(name) ? name : `'${name.replace(/'/g, "'\\''")}'`;
  return `openstack image create --disk-format ${g.disk_format} --container-format ${g.container_format} --min-disk ${g.min_disk} --file ${quoted} ${quoted}`;
}

function checksums(h) {
  const line = (key, label, value) => [el('dt', {}, label, ' ', el('code', { text: key })),
    el('dd', {}, el('code', { id: `hash-${key}`, class: 'digest', text: value }), key === 'os_hash_algo' ? null : copyButton(value, label))];
  return [
    el('dl', { class: 'glance-facts' },
      line('checksum', 'MD5', h.checksum),
      line('os_hash_algo', 'Secure hash', h.os_hash_algo),
      line('os_hash_value', 'SHA-512', h.os_hash_value)),
    el('p', { class: 'muted' }, 'Glance computes these itself while it stores the upload: compare them with what ',
      el('code', { text: 'openstack image show' }), ' prints afterwards to know the image arrived whole.'),
  ];
}

/** The block for a report, or nothing when glance has no disk_format for the file. */
export function renderGlance(r) {
  const box = $('glance-box');
  const g = r.glance;
  box.hidden = !g;
  if (!g) {
    $('glance').replaceChildren();
    return;
  }
  const file = (r.files || []).find((f) => f.role === 'image' || f.role === 'package')?.name || 'disk';
  const cmd = command(g, file);
  const hash = longTask({
    id: 'hash',
    label: 'Compute checksums',
    starting: `Reading ${file}…`,
    run: (api, files, options) => api.hash(files, options),
    done: checksums,
    cancelled: 'Cancelled: no checksums were computed.',
    failTitle: 'The checksums could not be computed',
  });
  $('glance').replaceChildren(
    el('dl', { class: 'glance-facts' },
      row('disk_format', 'Disk format', g.disk_format),
      row('container_format', 'Container format', g.container_format),
      row('size', 'Size of the upload', g.size, sized(g.size)),
      row('virtual_size', 'Virtual size', g.virtual_size, sized(g.virtual_size)),
      row('min_disk', 'Smallest root disk', g.min_disk, `${g.min_disk} GB (GiB)`)),
    el('div', { class: 'glance-command' }, el('code', { id: 'glance-command', text: cmd }), copyButton(cmd, 'the upload command')),
    el('p', { class: 'glance-why', text: `${file} is uploaded as it is. The checksums below take one read of the whole file.` }),
    hash.node);
}

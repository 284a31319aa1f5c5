// Values as people read them: sizes, byte counts, durations, labels from keys, sentences from
// engine messages, the text of any error, and JSON that survives BigInts.

export const numberFormat = new Intl.NumberFormat('en-US');

export function human(n) {
  const v0 = Number(n);
  if (!Number.isFinite(v0)) return String(n);
  if (Math.abs(v0) < 1024) return `${v0} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = v0;
  let i = -1;
  do { v /= 1024; i++; } while (Math.abs(v) >= 1024 && i < units.length - 1);
  const shown = Number.isInteger(v) ? String(v) : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0);
  return `${shown} ${units[i]}`;
}

export const bytes = (n) => `${numberFormat.format(n)} ${Number(n) === 1 ? 'byte' : 'bytes'}`;

export function duration(s) {
  if (!Number.isFinite(s) || s < 0) return '';
  if (s < 1) return 'under a second';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

const ACRONYMS = new Set(['id', 'guid', 'uuid', 'l1', 'l2', 'lba', 'mbr', 'gpt', 'vm', 'os', 'cid', 'crc', 'ovf', 'iso', 'fat', 'ntfs', 'efi', 'ami', 'aki', 'ari', 'nic', 'uec', 'gce']);

export function label(key) {
  const words = String(key).split(/[-_]/).filter(Boolean)
    .map((w) => (ACRONYMS.has(w.toLowerCase()) ? w.toUpperCase() : w));
  const s = words.join(' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// Keys whose numbers are byte counts in every format's details (offsets are not: some are sectors).
export const isByteKey = (k) => (/(^|-)size$/.test(k) && !/^(table|chs)-size$/.test(k)) || k === 'start' || k === 'bytes';

export function errorText(e) {
  if (e === null || e === undefined) return 'unknown error';
  if (typeof e === 'string') return e;
  const msg = e.message || (typeof e.toString === 'function' ? e.toString() : '') || 'unknown error';
  return msg === '[object Object]' ? JSON.stringify(e) : msg;
}

// "the image reads ..." -> "The image reads ....". A first word that is a file name or "vmdisk"
// keeps its case.
export const sentence = (s) => {
  const t = String(s).trim();
  if (!t) return t;
  const first = t.split(/\s/, 1)[0];
  const head = /^[a-z]+:?$/.test(first) && first !== 'vmdisk' ? t.charAt(0).toUpperCase() + t.slice(1) : t;
  return head + (/[.!?)"]$/.test(t) ? '' : '.');
};

/** A fix as a sentence, without a full stop that would end up in a command copied from it. */
export function fixText(fix) {
  const s = sentence(fix);
  return /[.!?)"]$/.test(String(fix).trim()) ? s : s.slice(0, -1);
}

export function jsonOf(value) {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString()) : v));
}

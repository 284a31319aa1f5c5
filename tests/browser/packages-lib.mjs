// Packages for the browser tests, built at test time: OVF descriptors as VMware's ovftool writes
// them (translated from tests/packages.rs), manifests, tar archives written by hand (ustar with a
// pax `size` record for members over 8 GiB, data placed with positioned writes so holes stay
// holes and a 9 GiB member costs a few KiB of disk), a bzImage header and a newc cpio for UEC.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';

export const STREAM = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';
export const QCOW2 = 'http://www.gnome.org/~markmc/qcow-image-format.html';

export function sh(dir, script) {
  return execFileSync('sh', ['-c', script], { cwd: dir, encoding: 'utf8' });
}

export function sha256(file) {
  return execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(/\s+/)[0];
}

/**
 * The SHA-256 of a sparse file's content (`size` bytes, `writes` [[offset, Buffer]] in order,
 * zeros elsewhere) without reading it: node's OpenSSL hashes GiBs of zeros in a second or two,
 * where sha256sum here takes 10 s per GiB.
 */
export function sha256Sparse(size, writes) {
  const h = createHash('sha256');
  const zeros = Buffer.alloc(16 << 20);
  let at = 0;
  const fill = (to) => {
    while (at < to) {
      const n = Math.min(zeros.length, to - at);
      h.update(n === zeros.length ? zeros : zeros.subarray(0, n));
      at += n;
    }
  };
  for (const [off, buf] of [...writes].sort((x, y) => x[0] - y[0])) {
    fill(off);
    h.update(buf);
    at += buf.length;
  }
  fill(size);
  return h.digest('hex');
}

/** A manifest as ovftool writes it: `SHA256(name)= hex`, one line per file. */
export function manifest(files) {
  return files.map((f) => `SHA256(${basename(f)})= ${sha256(f)}\n`).join('');
}

/** Bytes that do not compress (a fixed xorshift sequence), `n` of them. */
export function noise(n, seed) {
  const out = Buffer.alloc(n);
  let x = BigInt(seed) * 0x9e3779b97f4a7c15n + 1n;
  const mask = (1n << 64n) - 1n;
  for (let i = 0; i < n; i += 8) {
    x ^= (x << 13n) & mask;
    x ^= x >> 7n;
    x ^= (x << 17n) & mask;
    const v = x;
    for (let k = 0; k < 8 && i + k < n; k++) out[i + k] = Number((v >> BigInt(8 * k)) & 0xffn);
  }
  return out;
}

/**
 * An OVF 1.0 descriptor as ovftool writes it: one VM on an lsilogic SCSI controller, its disks
 * in slots 0, 1, ..., a VmxNet3 NIC. `disks`: [{ href, mib (capacity in MiB), format (URI, optional) }].
 */
export function ovftoolOvf(vm, disks) {
  const refs = disks.map((d, i) => `<File ovf:href="${d.href}" ovf:id="file${i + 1}"/>`).join('');
  const section = disks.map((d, i) => `<Disk ovf:capacity="${d.mib}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk${i + 1}" ovf:fileRef="file${i + 1}"${d.format ? ` ovf:format="${d.format}"` : ''}/>`).join('');
  const items = disks.map((d, i) => `<Item><rasd:AddressOnParent>${i}</rasd:AddressOnParent><rasd:ElementName>Hard disk ${i + 1}</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk${i + 1}</rasd:HostResource><rasd:InstanceID>${11 + i}</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>`).join('\n      ');
  return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-18663434" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>${refs}</References>
  <DiskSection><Info>Virtual disk information</Info>${section}</DiskSection>
  <NetworkSection><Info>The list of logical networks</Info><Network ovf:name="VM Network"><Description>The VM Network network</Description></Network></NetworkSection>
  <VirtualSystem ovf:id="${vm}">
    <Info>A virtual machine</Info>
    <Name>${vm}</Name>
    <OperatingSystemSection ovf:id="96" vmw:osType="ubuntu64Guest"><Info>The kind of installed guest operating system</Info><Description>Ubuntu Linux (64-bit)</Description></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemIdentifier>${vm}</vssd:VirtualSystemIdentifier><vssd:VirtualSystemType>vmx-19</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:ElementName>2 virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>4096MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>4096</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      ${items}
      <Item><rasd:AddressOnParent>7</rasd:AddressOnParent><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>20</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
}

// ---------------------------------------------------------------------------------------------
// Tar by hand.

const BLOCK = 512;
const USTAR_MAX = 0o77777777777; // the largest size a ustar header's 11 octal digits hold

function field(buf, at, len, value) {
  const b = Buffer.from(value, 'utf8');
  if (b.length > len) throw new Error(`tar header field too long: ${value}`);
  b.copy(buf, at);
}

const octal = (n, digits) => n.toString(8).padStart(digits, '0');

/** One 512-byte ustar header. */
export function ustarHeader(name, size, { type = '0', mtime = 1_700_000_000 } = {}) {
  const h = Buffer.alloc(BLOCK);
  field(h, 0, 100, name);
  field(h, 100, 8, `${octal(0o644, 7)}\0`);
  field(h, 108, 8, `${octal(1000, 7)}\0`);
  field(h, 116, 8, `${octal(1000, 7)}\0`);
  field(h, 124, 12, `${octal(size, 11)}\0`);
  field(h, 136, 12, `${octal(mtime, 11)}\0`);
  field(h, 148, 8, '        ');
  field(h, 156, 1, type);
  field(h, 257, 6, 'ustar\0');
  field(h, 263, 2, '00');
  field(h, 265, 32, 'vmdisk');
  field(h, 297, 32, 'vmdisk');
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, `${octal(sum, 6)}\0 `);
  return h;
}

/** A pax extended record "LEN key=value\n" (LEN counts itself). */
export function paxRecord(key, value) {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
}

/**
 * Write a tar archive at `path`. Members: { name, data: Buffer } or { name, size, writes:
 * [[offset, Buffer], ...] } (the rest of such a member is a hole in the archive file). A member
 * larger than ustar's 8 GiB gets a pax `size` record and 0 in its ustar size field. Returns
 * every member's data offset in the archive.
 */
export function writeTar(path, members) {
  const fd = openSync(path, 'w');
  const at = {};
  let pos = 0;
  const put = (buf, where) => { writeSync(fd, buf, 0, buf.length, where); };
  try {
    for (const m of members) {
      const size = m.data ? m.data.length : m.size;
      if (size > USTAR_MAX) {
        const rec = Buffer.from(paxRecord('size', size));
        put(ustarHeader(`PaxHeaders/${m.name}`.slice(0, 99), rec.length, { type: 'x' }), pos);
        put(rec, pos + BLOCK);
        pos += BLOCK + Math.ceil(rec.length / BLOCK) * BLOCK;
      }
      put(ustarHeader(m.name, size > USTAR_MAX ? 0 : size), pos);
      pos += BLOCK;
      at[m.name] = pos;
      if (m.data) put(m.data, pos);
      for (const [off, buf] of m.writes || []) put(buf, pos + off);
      pos += Math.ceil(size / BLOCK) * BLOCK;
    }
    put(Buffer.alloc(2 * BLOCK), pos); // the end-of-archive blocks
    pos += 2 * BLOCK;
    ftruncateSync(fd, pos);
  } finally {
    closeSync(fd);
  }
  return at;
}

/** A sparse file of `size` bytes holding `writes` ([[offset, Buffer]]), holes elsewhere. */
export function writeSparse(path, size, writes) {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [off, buf] of writes) writeSync(fd, buf, 0, buf.length, off);
  } finally {
    closeSync(fd);
  }
  return path;
}

/**
 * An OVA of files on disk (tar: the descriptor first, then the disks, then a SHA256 manifest of
 * them all). Returns every member's data offset in the archive.
 */
export function ova(path, files, { mf = true } = {}) {
  const members = files.map((f) => ({ name: basename(f), data: readFileSync(f) }));
  if (mf) members.push({ name: basename(files[0]).replace(/\.ovf$/, '.mf'), data: Buffer.from(manifest(files)) });
  return writeTar(path, members);
}

// ---------------------------------------------------------------------------------------------
// UEC pieces.

/** A hand-built x86 bzImage header (boot protocol 2.15): enough for detection. */
export function bzImage() {
  const k = Buffer.alloc(64 << 10);
  k[0x1f1] = 4;
  k[0x1fe] = 0x55;
  k[0x1ff] = 0xaa;
  k.write('HdrS', 0x202, 'latin1');
  k.writeUInt16LE(0x020f, 0x206);
  k[0x211] = 1;
  k.writeUInt32LE((60 << 10) / 16, 0x1f4);
  return k;
}

/** One newc cpio member. */
export function newc(name, data) {
  const fields = [1, 0o100644, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length + 1, 0];
  const pad4 = (b) => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const head = pad4(Buffer.from(`070701${fields.map((n) => n.toString(16).padStart(8, '0')).join('')}${name}\0`, 'latin1'));
  return Buffer.concat([head, pad4(Buffer.from(data))]);
}

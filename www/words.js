// Words for people: the names of severities, formats and file roles, and the hints shown when
// files cannot be read. Plain data only. (Finding codes are explained by the engine: findingCodes().)

export const SEVERITY = {
  critical: { label: 'Critical', rank: 0 },
  warning: { label: 'Warning', rank: 1 },
  info: { label: 'Note', rank: 2 },
};

export const FORMATS = {
  raw: 'Raw disk', qcow2: 'QEMU copy-on-write', qcow: 'QEMU copy-on-write (legacy)', qed: 'QEMU enhanced disk',
  vmdk: 'VMware virtual disk', vdi: 'VirtualBox disk image', vhd: 'Virtual Hard Disk', vhdx: 'Hyper-V virtual hard disk',
  parallels: 'Parallels disk', luks: 'LUKS encrypted volume', iso: 'Optical disc image', ova: 'Open virtual appliance',
  ami: 'Root filesystem image', aki: 'Linux kernel', ari: 'Initial ramdisk', uec: 'Ubuntu cloud image bundle',
  ovf: 'Open virtualization format package', gce: 'Google Compute Engine image tarball', compressed: 'Compressed disk image',
};

// The clouds the report's `clouds` verdicts name (crate/src/cloud/).
export const CLOUDS = {
  openstack: 'OpenStack (glance)',
  aws: 'AWS (VM Import)',
  azure: 'Azure',
  gce: 'Google Compute Engine',
};

export const ROLES = {
  image: 'the disk image',
  backing: 'read where the overlay has no data',
  extent: 'holds part of the disk',
  'data-file': 'holds the image\'s data',
  unused: 'not used by this image',
  package: 'the package, read in place',
  descriptor: 'the OVF descriptor',
  manifest: 'digests of the package\'s files',
  certificate: 'the signature over the manifest',
  disk: 'a disk of the package',
  member: 'a file of the package',
};

// Engine errors carry a stable `kind` (the message is the CLI's one-line message).
export const READ_HINTS = {
  'not-an-image': 'vmdisk found no disk image it can read in this file.',
  truncated: 'The file is shorter than its own headers say: the download or copy was probably cut short.',
  corrupt: 'The image\'s internal tables are damaged; it cannot be read safely.',
  missing: 'Choose every file of the image together: the overlay with its backing file, the descriptor with its extents.',
  unsupported: 'vmdisk does not support this yet.',
  io: 'The browser could not read the file. If it is on a removable or network drive, copy it locally and try again.',
};

// Types of vmdisk's browser API (www/vmdisk.js). The Report is the object `vmdisk info --json`
// prints (crate/src/report.rs); map rows are those of `vmdisk map --json` (crate/src/engine.rs).

/** Every format vmdisk names. */
export type Format =
  | 'raw' | 'qcow2' | 'qcow' | 'qed' | 'vmdk' | 'vdi' | 'vhd' | 'vhdx' | 'parallels' | 'luks'
  | 'iso' | 'ova' | 'ovf' | 'ami' | 'aki' | 'ari' | 'uec' | 'gce' | 'compressed';

export type Severity = 'info' | 'warning' | 'critical';

export interface Finding {
  /** A stable identifier to match on (e.g. "backing-file", "polyglot", "unused-file"). */
  code: string;
  severity: Severity;
  message: string;
}

export interface FileInfo {
  name: string;
  size: number;
  /** What the file is in this set: "image", "backing", "extent", ... or "unused". */
  role: string;
}

export interface Report {
  format: Format;
  /** Bytes (JS numbers: exact up to 2^53). */
  'virtual-size': number;
  'actual-size': number;
  /** Every format whose signature the main file carries (more than one: a polyglot). */
  detected: Format[];
  /** Whether convert() can read this image set. */
  convertible: boolean;
  files: FileInfo[];
  /** Format details (qcow2: version, cluster size, snapshots, ...); an object, maybe empty. */
  'format-specific': Record<string, unknown>;
  /** A package's disks in package order (OVA/OVF, UEC members, GCE, compressed): absent otherwise. */
  disks?: DiskReport[];
  /** Every finding, a package's disks' included (their messages start "disk N (name): "). */
  safety: { safe: boolean; findings: Finding[] };
  /** Whether each cloud would take the file as it is, and why not (crate/src/cloud/). */
  clouds: CloudVerdict[];
  /** What to declare when uploading the file to OpenStack's glance; absent when glance has no disk_format for it. */
  glance?: Glance;
  /**
   * What the guest's first sectors hold, read through the image as convert() reads it (absent
   * for a package, whose disks carry their own, and when the guest cannot be read).
   */
  guest?: GuestLayout;
}

/** The guest disk's layout: its partition table and partitions, as the probe reads raw disks. */
export interface GuestLayout {
  /** Absent when the guest holds no partition table. */
  'partition-table'?: 'mbr' | 'gpt';
  partitions?: Record<string, unknown>[];
  [key: string]: unknown;
}

export type CloudTarget = 'openstack' | 'aws' | 'azure' | 'gce';

export interface CloudVerdict {
  target: CloudTarget;
  /** True when `reasons` is empty. */
  accepted: boolean;
  reasons: CloudReason[];
}

export interface CloudReason {
  /** Stable, kebab-case ("vhd-not-fixed", "size-not-whole-mib", ...). */
  code: string;
  /** What is wrong, in plain words. */
  message: string;
  /** What to do about it (often the commands: `vmdisk convert -O qcow2 -o out.qcow2 in.vmdk`). */
  fix: string;
  /** The vmdisk conversion `fix` names, as data (absent when it names none): key on this, not on `fix`. */
  convert?: CloudConversion;
}

export interface CloudConversion {
  format: 'raw' | 'qcow2';
  /** A package's disk, 0-based as in the report's `disks` (the CLI's `--disk` is this + 1); null: the image or the default disk. */
  disk: number | null;
  /** The output file's name. */
  output: string;
  /** The fix goes on with other tools (qemu-img, tar) after this conversion. */
  'first-step': boolean;
}

/** The glance image record of the file (the names are glance's own). */
export interface Glance {
  disk_format: string;
  container_format: string;
  /** Bytes of the file uploaded (for a package, the package file). */
  size: number;
  virtual_size: number;
  /** The virtual size in GiB, rounded up. */
  min_disk: number;
}

/** What hash() resolves to: the checksums glance records of an upload. */
export interface Checksums {
  /** MD5 of the file, lowercase hex. */
  checksum: string;
  os_hash_algo: 'sha512';
  /** SHA-512 of the file, lowercase hex. */
  os_hash_value: string;
}

/** One disk of a package (for a UEC tarball, one member). */
export interface DiskReport {
  /** The member name or OVF href. */
  name: string;
  /** What its bytes are; null when it cannot be read (see `error`). */
  format: Format | null;
  'virtual-size': number | null;
  /** "disk", or a UEC member's "ami", "aki", "ari", "other". */
  role: 'disk' | 'ami' | 'aki' | 'ari' | 'other';
  /** Whether convert({disk}) can read it (a kernel or ramdisk cannot: it is not a disk). */
  convertible: boolean;
  /** The CLI's one-line message when it cannot be read (a missing member, an unsafe href). */
  error?: string;
  /** Stored compressed in the package. */
  compression?: 'gzip' | 'xz' | 'zstd';
  /** From an OVF descriptor. */
  capacity?: number;
  vm?: string;
  controller?: string;
  'declared-format'?: string;
  'format-specific': Record<string, unknown> | null;
  findings: Finding[];
  /** The disk's guest layout, as the report's `guest` (absent when not read: a compressed disk that must be decompressed first). */
  guest?: GuestLayout;
}

/**
 * What check() resolves to: `vmdisk check --json`, in the shape of `qemu-img check
 * --output=json` (counters that are zero are left out, as qemu-img leaves them out).
 */
export interface CheckResult {
  filename: string;
  /** The format as qemu-img names it ("qcow2", "vpc", ...; a package's own for a package). */
  format: string;
  /** Problems that stopped part of the check from running. */
  'check-errors': number;
  corruptions?: number;
  /** Clusters whose stored refcount is higher than their use. */
  leaks?: number;
  'image-end-offset'?: number;
  'total-clusters'?: number;
  'allocated-clusters'?: number;
  'fragmented-clusters'?: number;
  'compressed-clusters'?: number;
  /** The first 50 problems, one line each. */
  problems: string[];
  /** How many more problems were found than `problems` lists. */
  'problems-not-shown'?: number;
  /** A package's disks, each checked on its own. */
  disks?: CheckResult[];
  /**
   * The status `vmdisk check` and qemu-img check exit with: 0 clean, 1 the check could not run
   * (wholly or in part), 2 corruptions, 3 leaked clusters only. Set on the top-level result.
   */
  'exit-code'?: 0 | 1 | 2 | 3;
}

/** One row of `vmdisk map --json`, shaped like `qemu-img map --output=json`. */
export interface MapEntry {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  compressed: boolean;
  offset?: number;
  file?: string;
}

export type ErrorKind =
  | 'io' | 'truncated' | 'corrupt' | 'unsupported' | 'not-an-image' | 'missing' | 'invalid';

/**
 * How every call fails (except cancellation, a DOMException named "AbortError"): `message` is
 * the CLI's one line ("corrupt image: ..."), `detail` the same without the kind's prefix.
 */
export interface VmdiskError extends Error {
  kind?: ErrorKind;
  detail?: string;
}

export type Files = FileList | ArrayLike<File> | Iterable<File> | File;

export interface Progress {
  /** Guest bytes done and in all (the virtual size); for the phases before: see `phase`. */
  done: number;
  total: number;
  /** Bytes per second over the last few seconds. */
  rate: number;
  /**
   * `converting` (done/total: guest bytes); before it, for a package's disk, `verifying` (the
   * manifest digests of its members: bytes read) and `decompressing` (a compressed disk copied
   * into OPFS first: bytes decompressed, total 0 when not known).
   */
  phase: 'verifying' | 'decompressing' | 'converting';
}

export interface ConvertOptions {
  format?: 'qcow2' | 'raw';
  /** qcow2 only: compress every cluster (zlib is qemu-img's `-c`). */
  compression?: 'zlib' | 'zstd' | null;
  /** qcow2 only: a power of two from 512 to 2 MiB (default 64 KiB). */
  clusterSize?: number;
  /** qcow2 only: "1.1" (version 3, default) or "0.10" (version 2; no zstd). */
  compat?: '1.1' | '0.10';
  /** A package's disk: an index into the report's `disks` (default: its first disk, or a UEC tarball's machine image). */
  disk?: number;
  /**
   * Write here (e.g. a handle from showSaveFilePicker) instead of a new OPFS file; on failure or
   * abort the file keeps its previous contents. The result's `file` is then this file.
   */
  output?: FileSystemFileHandle;
  /**
   * The most parts the output File may be composed of (default 4096): past it, input bytes are
   * copied into the spill file (each part costs the browser time when the File is built).
   */
  maxParts?: number;
  onProgress?: (progress: Progress) => void;
  /** Aborting cancels the conversion, deletes its output and rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface ConvertResult {
  /**
   * The output, composed: slices of the picked files for the data it keeps unchanged, generated
   * tables, zero runs, and a spill file in the origin-private file system for bytes that had to
   * be produced. Readable until release(), the page closes, or a picked file changes (readable()).
   */
  file: File;
  /** The output's name, after the main input's: disk.vmdk -> disk.qcow2. */
  name: string;
  size: number;
  /** The parts `file` is composed of (0 when written to `output`). */
  parts: number;
  /** Bytes of `file` in the spill file (what had to be produced). */
  spilledBytes: number;
  /** The picked files `file` reads when it is saved. */
  sources: File[];
  format: 'qcow2' | 'raw';
  /** The main input file's name (for a package, the converted disk's name). */
  input: string;
  virtualSize: number;
  /** The spill file's name in the origin-private file system; null when none or written to `output`. */
  opfsName: string | null;
  seconds: number;
  /** The engine worker's wasm memory at the end (it never shrinks: the peak). */
  wasmMemoryBytes: number;
  /** The largest wasm memory of a compression sub-worker (0 when none ran). */
  poolMemoryBytes: number;
  /** Compression sub-workers alive at the end. */
  poolWorkers: number;
  /** Each live sub-worker's wasm memory at the end (one past 128 MiB is replaced once idle). */
  poolWorkerMemory: number[];
}

/** Identify and check an image set: the Report of `vmdisk info --json`. */
export function inspect(files: Files): Promise<Report>;

/** Where every guest byte lives: the rows of `vmdisk map --json`. */
export function map(files: Files): Promise<MapEntry[]>;
/** The rows in batches as the map is walked; resolves to their count. */
export function map(files: Files, options: { onRows: (rows: MapEntry[]) => void }): Promise<number>;

/** Convert an image set (flattening any backing chain) to qcow2 or raw, in a Web Worker. */
export function convert(files: Files, options?: ConvertOptions): Promise<ConvertResult>;

/**
 * Read a package through and check it: every manifest digest, every compressed stream's own
 * checksums. Resolves to the findings `vmdisk info` adds for them ([] for a plain image),
 * carrying `clouds`: the report's cloud verdicts judged again with those findings.
 */
export function verify(
  files: Files,
  options?: { onProgress?: (p: { done: number; total: number }) => void; signal?: AbortSignal },
): Promise<Finding[] & { clouds: CloudVerdict[] }>;

/**
 * The full consistency check `vmdisk check` runs (qemu-img check's): qcow2 refcounts rebuilt and
 * compared, tables in bounds, compressed clusters decoded; a package verified (unless `verify:
 * false`) and each disk checked. A damaged image resolves with corruptions; it does not reject.
 */
export function check(
  files: Files,
  options?: {
    verify?: boolean;
    onProgress?: (p: { done: number; total: number }) => void;
    signal?: AbortSignal;
  },
): Promise<CheckResult>;

/**
 * MD5 and SHA-512 of the main file (for a package, the package file) in one read: the values
 * `vmdisk info --hash` adds to the glance record. `onProgress` in bytes of that file.
 */
export function hash(
  files: Files,
  options?: { onProgress?: (p: { done: number; total: number }) => void; signal?: AbortSignal },
): Promise<Checksums>;

/**
 * Resolves when `result.file` can still be saved; rejects (kind "io", a message naming the file)
 * when a picked file it reads changed on disk after it was picked.
 */
export function readable(result: ConvertResult): Promise<void>;

/** Delete a conversion's spill file from the origin-private file system. */
export function release(result: ConvertResult): Promise<void>;

/** One finding code of the engine's table. */
export interface FindingCodeInfo {
  /** The stable name a finding carries (`backing-file`). */
  code: string;
  /** A short title in plain words. */
  title: string;
  /** What the finding means for the user. */
  explanation: string;
}

/** Every finding code the engine can report, with its title and explanation. */
export function findingCodes(): Promise<FindingCodeInfo[]>;

/** The engine worker's wasm memory now, and the largest a compression sub-worker's reached. */
export function memory(): Promise<{ wasmMemoryBytes: number; poolMemoryBytes: number }>;

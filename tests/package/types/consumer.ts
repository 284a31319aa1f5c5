// A TypeScript consumer of the package's types (checked by `tsc --noEmit -p tests/package/types`
// against the installed tarball). The @ts-expect-error lines fail the check if a type loosened to
// `any` or lost a member: each must be an error.
import { check, convert, hash, inspect, map, release, type CheckResult, type Checksums, type ConvertResult, type Report } from 'vmdisk';
import { VmdiskCheck, type VmdiskReportDetail } from 'vmdisk/element';
import * as inline from 'vmdisk/inline';

export async function upload(input: HTMLInputElement): Promise<string> {
  const files = input.files;
  if (!files) return 'no files';
  const report: Report = await inspect(files);
  const refused = report.clouds.filter((v) => !v.accepted).map((v) => `${v.target}: ${v.reasons.map((r) => r.fix).join('; ')}`);
  const glance = report.glance ? `${report.glance.disk_format}/${report.glance.container_format} ${report.glance.min_disk} GiB` : 'not for glance';
  // @ts-expect-error the format is a string union, not a number
  const wrong: number = report.format;
  const rows: number = await map(files, { onRows: (r) => r.forEach((e) => e.start + e.length) });
  const out: ConvertResult = await convert(files, { format: 'qcow2', compression: 'zstd', onProgress: (p) => p.done / p.total });
  // @ts-expect-error vhd is not an output format
  await convert(files, { format: 'vhd' });
  const sums = await hash([out.file]);
  await release(out);
  return `${report.safety.safe} ${refused.join(', ')} ${glance} ${rows} ${sums.os_hash_value} ${wrong}`;
}

/** The thorough check and the glance checksums, with progress and a Cancel button. */
export async function integrity(files: FileList, cancel: AbortController, bar: HTMLProgressElement): Promise<string> {
  const onProgress = ({ done, total }: { done: number; total: number }) => { bar.value = done; bar.max = total; };
  const result: CheckResult = await check(files, { verify: false, onProgress, signal: cancel.signal });
  const status: 0 | 1 | 2 | 3 | undefined = result['exit-code'];
  const damaged = (result.disks ?? [result]).filter((d) => (d.corruptions ?? 0) + (d.leaks ?? 0) > 0).map((d) => d.filename);
  const first: string | undefined = result.problems[0];
  // @ts-expect-error an exit code is 0 to 3, as qemu-img check's
  const wrongStatus: CheckResult['exit-code'] = 4;
  // @ts-expect-error check's progress has done and total, no rate (convert's has)
  await check(files, { onProgress: (p) => p.rate });
  // @ts-expect-error verify is a boolean
  await check(files, { verify: 'no' });
  // @ts-expect-error the signal is the controller's AbortSignal, not the controller
  await check(files, { signal: cancel });
  const sums: Checksums = await hash(files, { onProgress: (p) => p.done / p.total, signal: cancel.signal });
  const algo: 'sha512' = sums.os_hash_algo;
  // @ts-expect-error the MD5 is `checksum`; there is no `md5`
  void sums.md5;
  // @ts-expect-error hash has no verify option (check has)
  await hash(files, { verify: false });
  // @ts-expect-error hash takes files, not a report
  await hash(await inspect(files));
  return `${status} ${damaged.join(', ')} ${first ?? ''} ${sums.checksum} ${algo}:${sums.os_hash_value} ${wrongStatus}`;
}

export function watch(form: HTMLFormElement): VmdiskCheck {
  const check = document.createElement('vmdisk-check'); // HTMLElementTagNameMap: a VmdiskCheck
  check.htmlFor = 'disk';
  check.files = [new File([new Uint8Array(512)], 'disk.raw')];
  check.addEventListener('vmdisk-report', (e) => {
    const detail: VmdiskReportDetail = e.detail;
    form.dataset.format = detail.report.glance?.disk_format ?? '';
    // @ts-expect-error the detail has no `result`
    void e.detail.result;
  });
  form.addEventListener('vmdisk-error', (e) => { form.dataset.error = e.detail.error.kind ?? e.detail.error.message; });
  const state: 'idle' | 'checking' | 'safe' | 'unsafe' | 'failed' = check.state;
  form.dataset.state = state;
  return check;
}

/** vmdisk/inline (for esbuild) has the types of vmdisk. */
export async function inlineFormat(files: File[]): Promise<string> {
  const report: Report = await inline.inspect(files);
  // @ts-expect-error inline.convert takes options, not a format string
  await inline.convert(files, 'qcow2');
  return report.format;
}

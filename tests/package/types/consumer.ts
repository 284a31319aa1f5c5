// A TypeScript consumer of the package's types (checked by `tsc --noEmit -p tests/package/types`
// against the installed tarball). The @ts-expect-error lines fail the check if a type loosened to
// `any` or lost a member: each must be an error.
import { convert, hash, inspect, map, release, type ConvertResult, type Report } from 'vmdisk';
import { VmdiskCheck, type VmdiskReportDetail } from 'vmdisk/element';

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

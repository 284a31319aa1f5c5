// Types of <vmdisk-check> (www/vmdisk-check.js; in the npm package: `import 'vmdisk/element'`).
import type { Files, Report, VmdiskError } from './vmdisk.js';

export type VmdiskCheckState = 'idle' | 'checking' | 'safe' | 'unsafe' | 'failed';

/** `vmdisk-report`'s detail: the report of the files, as inspect() resolves. */
export interface VmdiskReportDetail {
  report: Report;
  files: File[];
}

/** `vmdisk-error`'s detail: why the files could not be read. */
export interface VmdiskErrorDetail {
  error: VmdiskError;
  files: File[];
}

/** `<vmdisk-check for="input-id">`: inspects the input's files (or `files`) and shows the verdict. */
export class VmdiskCheck extends HTMLElement {
  /** The id of the `<input type="file">` it follows (the `for` attribute). */
  htmlFor: string;
  /** The files last checked; setting them starts a check. */
  get files(): File[];
  set files(files: Files);
  /** The last report: null while checking, after a failure, or before any file. */
  readonly report: Report | null;
  /** Why the last files could not be read, or null. */
  readonly error: VmdiskError | null;
  /** Also the host's `state` attribute. */
  readonly state: VmdiskCheckState;
  /** Check the current files again: the report, or null when they could not be read. */
  check(): Promise<Report | null>;
}

declare global {
  interface HTMLElementTagNameMap {
    'vmdisk-check': VmdiskCheck;
  }
  interface HTMLElementEventMap {
    'vmdisk-report': CustomEvent<VmdiskReportDetail>;
    'vmdisk-error': CustomEvent<VmdiskErrorDetail>;
  }
}

// The test app's body, whichever entry imported the package: hands the test a handle on the API,
// the element's events, and a way to download a conversion.

/** Expose `vmdisk` (the package's API, from `vmdisk` or `vmdisk/inline`) to the test. */
export function start(vmdisk) {
  const events = [];
  const check = document.querySelector('vmdisk-check');
  for (const type of ['vmdisk-report', 'vmdisk-error']) {
    document.addEventListener(type, ({ target, detail: { report, error, files } }) => events.push({
      type, target: target.localName, report, error: error && { message: error.message, kind: error.kind }, files: files.map((f) => f.name),
    }));
  }

  /** Convert the files of input #id and download the result under `name`. */
  async function convertAndDownload(id, options, name) {
    const out = await vmdisk.convert(document.getElementById(id).files, options);
    const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(out.file), download: name });
    document.body.append(a);
    a.click();
    return { name: out.name, size: out.size, format: out.format };
  }

  window.app = { vmdisk, events, check, convertAndDownload, defined: customElements.get('vmdisk-check') === check.constructor };
  document.body.dataset.ready = 'true';
}

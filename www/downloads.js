// Downloads by object URL, checked before the browser starts saving them.

import { engine } from './engine.js';
import { errorText } from './format.js';
import { showError } from './messages.js';

/** Downloads by object URL: the result each saves. */
export const downloads = new Map();

/**
 * A click on a download first checks that the picked files the output is made of are still
 * readable; a changed one gets a readable error instead of a download that fails in the
 * browser's list.
 */
export function guardDownloads() {
  document.addEventListener('click', async (e) => {
    const link = e.target.closest?.('a[download]');
    const result = link && downloads.get(link.href);
    if (!result || link.dataset.checked) return;
    e.preventDefault();
    try {
      const api = await engine();
      await api.readable(result);
    } catch (err) {
      showError('The download cannot start', errorText(err), 'The output reads the picked files as it is saved. Pick the files again and convert once more.');
      return;
    }
    link.dataset.checked = '1';
    link.click();
    delete link.dataset.checked;
  });
}

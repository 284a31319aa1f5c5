// The error box and the busy line.

import { $, el } from './dom.js';
import { sentence } from './format.js';

export function showError(title, detail, hint) {
  const box = $('error');
  box.replaceChildren(
    el('span', { class: 'error-icon', 'aria-hidden': 'true' }),
    el('div', {},
      el('p', { class: 'error-title', text: title }),
      detail ? el('p', { class: 'error-detail', text: sentence(detail) }) : null,
      hint ? el('p', { class: 'error-hint', text: hint }) : null),
    el('button', { type: 'button', class: 'error-close', 'aria-label': 'Dismiss this message', text: '×' }),
  );
  box.querySelector('.error-close').addEventListener('click', clearError);
  box.hidden = false;
}

export function clearError() {
  $('error').hidden = true;
  $('error').replaceChildren();
}

export const showBusy = (text) => { $('busy').textContent = text || ''; };

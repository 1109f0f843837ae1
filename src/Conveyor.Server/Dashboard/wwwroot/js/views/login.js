// The key prompt, shown when the server has API keys and we hold none (or a wrong one).
import { h } from '../dom.js';

export function login({ message, submit }) {
  const input = h('input', { id: 'api-key', type: 'password', name: 'key', autocomplete: 'current-password', required: true, minlength: 16, spellcheck: 'false', placeholder: 'Paste an API key' });
  const error = h('p.form-error', { role: 'alert', hidden: !message }, message || '');
  const button = h('button.btn.primary', { type: 'submit' }, 'Sign in');
  const form = h('form.login', {
    async onsubmit(event) {
      event.preventDefault();
      button.disabled = true;
      error.hidden = true;
      try {
        await submit(input.value.trim());
      } catch (e) {
        error.textContent = e.status === 401 ? 'That key is not one this server knows.' : e.message;
        error.hidden = false;
        input.select();
      } finally {
        button.disabled = false;
      }
    },
  },
  h('h1', null, 'Sign in to Conveyor'),
  h('p.muted', null, 'This server needs an API key. An admin key can retry, cancel and pause; a producer or consumer key can look but not change anything.'),
  h('label', { for: 'api-key' }, 'API key'),
  input,
  error,
  button,
  h('p.hint', null, 'The key is kept in this tab only (session storage) and sent as Authorization: Bearer.'));
  queueMicrotask(() => input.focus());
  return h('section.panel.login-panel', null, form);
}

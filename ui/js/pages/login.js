// login.js - the login form: user name or email and password; Enter
// submits. The panel's answer (wrong password, throttled, unreachable) is
// shown in the form.

import { login } from '../api.js';
import { h, field, form } from '../dom.js';

export function render(view, ctx) {
  const user = h('input', { type: 'text', id: 'login-username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password', required: true });
  const f = form({ 'aria-labelledby': 'login-title', id: 'login-form' }, async () => {
    if (!user.value || !pass.value) throw new Error('Enter your user name and password.');
    try {
      await login(user.value.trim(), pass.value);
    } catch (e) {
      pass.value = '';
      pass.focus();
      throw e;
    }
  });
  f.append(
    field('User name or email', user),
    field('Password', pass),
    h('button', { type: 'submit', class: 'primary', id: 'login-submit', text: 'Log in' }));
  view.append(h('div', { class: 'login card' },
    h('h1', { id: 'login-title', text: 'Log in to berth' }),
    ctx.reason ? h('p', { class: 'muted', text: ctx.reason }) : null,
    f));
  user.focus();
}

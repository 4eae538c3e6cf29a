// user_edit.js - creating a user, or changing one (name, email, password,
// role) and deleting them. Everyone may edit their own name, email and
// password; the rest needs user.create / user.update / user.delete.

import { get, post, patch, del } from '../api.js';
import { h, field, form, showOk, showError, confirmDialog } from '../dom.js';
import { pageBar } from '../widgets.js';

export async function render(view, ctx) {
  const id = ctx.params.id || null;
  const self = id && id === ctx.me.user.id;
  const user = id ? await get(`/user/${encodeURIComponent(id)}`) : null;
  let roles = [];
  if (ctx.can('role.read')) roles = (await get('/roles')).roles;
  else if (ctx.me.role) roles = [ctx.me.role];
  if (!ctx.alive()) return;

  view.append(pageBar(id ? (self ? 'Your account' : `User ${user.name}`) : 'New user'));

  const name = h('input', { type: 'text', id: 'user-name', name: 'name', required: true, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', value: user ? user.name : '' });
  const email = h('input', { type: 'email', id: 'user-email', name: 'email', required: true, autocomplete: 'off', value: user ? user.email : '' });
  const password = h('input', { type: 'password', id: 'user-password', name: 'password', autocomplete: 'new-password', minlength: 8, required: !id });
  const role = h('select', { id: 'user-role', name: 'role' },
    roles.map((r) => h('option', { value: r.id, text: r.name })));
  if (user) role.value = String(user.roleId);
  const canRole = ctx.can('user.update') || (!id && ctx.can('user.create'));
  role.disabled = !canRole;

  const f = form({ id: 'user-form', 'aria-label': id ? 'Edit user' : 'New user' }, async () => {
    if (!id) {
      if (!role.value) throw new Error('Choose a role.');
      const r = await post('/user/create', { name: name.value.trim(), email: email.value.trim(), password: password.value, role_id: Number(role.value) });
      showOk(`User ${name.value} created.`);
      ctx.go(`/users/${r.uuid}`);
      return;
    }
    const body = { id };
    if (name.value.trim() !== user.name) body.name = name.value.trim();
    if (email.value.trim() !== user.email) body.email = email.value.trim();
    if (password.value) body.password = password.value;
    if (canRole && role.value && Number(role.value) !== user.roleId) body.role_id = Number(role.value);
    if (Object.keys(body).length === 1) throw new Error('Nothing changed.');
    await patch('/user', body);
    password.value = '';
    Object.assign(user, { name: body.name || user.name, email: body.email || user.email, roleId: body.role_id || user.roleId });
    showOk(body.password && self ? 'Saved. Your other sessions were logged out.' : 'Saved.');
  });
  f.append(
    h('div', { class: 'fields' },
      field('Name', name, 'a-z, 0-9, “_”, “-”, “.”; also the SSH login.'),
      field('Email', email)),
    h('div', { class: 'fields' },
      field(id ? 'New password' : 'Password', password, id ? 'Leave empty to keep it. At least 8 characters.' : 'At least 8 characters.'),
      field('Role', role, canRole ? null : 'Changing roles needs user.update.')),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', id: 'user-save', text: id ? 'Save' : 'Create user' }),
      h('a', { class: 'button', href: '#/users', text: 'Back' })));
  view.append(h('div', { class: 'card' }, f));

  if (id && !self && ctx.can('user.delete')) {
    const btn = h('button', { type: 'button', class: 'danger', id: 'user-delete', text: 'Delete user' });
    btn.addEventListener('click', async () => {
      if (!(await confirmDialog(`Delete ${user.name}? Their sessions, keys and grants go too.`, 'Delete'))) return;
      try {
        await del(`/user/${id}`);
        showOk(`${user.name} deleted.`);
        ctx.go('/users');
      } catch (e) {
        showError(e);
      }
    });
    view.append(h('div', { class: 'card' }, h('h2', { text: 'Delete' }), btn));
  }
  name.focus();
}

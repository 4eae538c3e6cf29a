// role_edit.js - a role's name and permissions as checkboxes (the names of
// auth.h and the wildcards), created, changed or deleted.

import { get, post, patch, del, PERMISSIONS, WILDCARDS } from '../api.js';
import { h, field, form, showOk, showError, confirmDialog } from '../dom.js';
import { pageBar } from '../widgets.js';

const WILDCARD_TEXT = {
  '*': 'Everything',
  'user.*': 'All user permissions',
  'role.*': 'All role permissions',
  'node.*': 'All node permissions',
  'site.*': 'All site permissions',
  'site.console.*': 'Console: watch and type',
  'site.files.*': 'Files: read and change',
};

const boxId = (p) => `perm-${p.replace(/\*/g, 'all').replace(/\./g, '-')}`;

export async function render(view, ctx) {
  const id = ctx.params.id || null;
  const role = id ? await get(`/role/${encodeURIComponent(id)}`) : { name: '', permissions: [] };
  if (!ctx.alive()) return;
  const editable = id ? ctx.can('role.update') : ctx.can('role.create');
  view.append(pageBar(id ? `Role ${role.name}` : 'New role'));

  const name = h('input', { type: 'text', id: 'role-name', name: 'name', required: true, spellcheck: 'false', value: role.name, disabled: !editable });
  const box = (p, label) => {
    const c = h('input', { type: 'checkbox', name: 'perm', value: p, id: boxId(p), checked: role.permissions.includes(p), disabled: !editable });
    return h('label', { for: c.id, title: label }, c, h('span', null, h('span', { class: 'mono', text: p }), h('br'), h('span', { class: 'muted', text: label })));
  };
  const f = form({ id: 'role-form', 'aria-label': id ? 'Edit role' : 'New role' }, async () => {
    const permissions = [...f.querySelectorAll('input[name=perm]:checked')].map((c) => c.value);
    if (!name.value.trim()) throw new Error('Give the role a name.');
    if (id) {
      await patch('/role', { id: Number(id), name: name.value.trim(), permissions });
      showOk('Role saved.');
    } else {
      await post('/role', { name: name.value.trim(), permissions });
      showOk(`Role ${name.value.trim()} created.`);
      ctx.go('/roles');
    }
  });
  f.append(
    field('Name', name),
    h('fieldset', null, h('legend', { text: 'Wildcards' }),
      h('div', { class: 'checks' }, WILDCARDS.map((w) => box(w, WILDCARD_TEXT[w])))),
    h('fieldset', null, h('legend', { text: 'Permissions' }),
      h('div', { class: 'checks' }, PERMISSIONS.map(([p, label]) => box(p, label)))),
    h('p', { class: 'muted', text: 'Site permissions can also be given on one site only, from that site’s page (Access).' }),
    h('div', { class: 'actions' },
      editable ? h('button', { type: 'submit', class: 'primary', id: 'role-save', text: id ? 'Save role' : 'Create role' }) : null,
      h('a', { class: 'button', href: '#/roles', text: 'Back' })));
  view.append(h('div', { class: 'card' }, f));

  if (id && ctx.can('role.delete')) {
    const btn = h('button', { type: 'button', class: 'danger', id: 'role-delete', text: 'Delete role' });
    btn.addEventListener('click', async () => {
      if (!(await confirmDialog(`Delete the role ${role.name}? Refused while users hold it.`, 'Delete'))) return;
      try {
        await del(`/role/${id}`);
        showOk(`Role ${role.name} deleted.`);
        ctx.go('/roles');
      } catch (e) {
        showError(e);
      }
    });
    view.append(h('div', { class: 'card' }, h('h2', { text: 'Delete' }), btn));
  }
  if (editable) name.focus();
}

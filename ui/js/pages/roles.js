// roles.js - every role with its permissions.

import { get } from '../api.js';
import { h, table } from '../dom.js';
import { pageBar } from '../widgets.js';

export async function render(view, ctx) {
  view.append(pageBar('Roles',
    ctx.can('role.create') ? h('a', { class: 'button primary', href: '#/roles/new', id: 'new-role', text: 'New role' }) : null));
  if (!ctx.can('role.read')) {
    view.append(h('p', { class: 'card', text: 'Your role cannot list roles (role.read).' }));
    return;
  }
  const rs = await get('/roles');
  const rows = rs.roles.map((r) => h('tr', { 'data-role': r.name },
    h('td', null, h('a', { href: `#/roles/${r.id}`, text: r.name })),
    h('td', { class: 'mono', text: r.permissions.join(', ') || '—' })));
  view.append(h('div', { class: 'card' },
    table(['Role', 'Permissions'], rows, 'No roles.', { id: 'roles-table', 'aria-label': 'Roles' })));
}

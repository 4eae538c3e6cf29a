// users.js - every user with their role; links to edit, a button to add.

import { get } from '../api.js';
import { h, table, when } from '../dom.js';
import { pageBar } from '../widgets.js';

export async function render(view, ctx) {
  view.append(pageBar('Users',
    ctx.can('user.create') ? h('a', { class: 'button primary', href: '#/users/new', id: 'new-user', text: 'New user' }) : null));
  if (!ctx.can('user.read')) {
    view.append(h('p', { class: 'card', text: 'Your role cannot list users (user.read).' }));
    return;
  }
  const [us, rs] = await Promise.all([
    get('/users'),
    ctx.can('role.read') ? get('/roles') : Promise.resolve({ roles: [] }),
  ]);
  const roleName = new Map(rs.roles.map((r) => [r.id, r.name]));
  const rows = us.users
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((u) => h('tr', { 'data-user': u.name },
      h('td', null, h('a', { href: `#/users/${u.id}`, text: u.name })),
      h('td', { class: 'mono', text: u.email }),
      h('td', { text: roleName.get(u.roleId) || `#${u.roleId}` }),
      h('td', { class: 'hide-narrow', text: when(u.createdAt) })));
  view.append(h('div', { class: 'card' },
    table(['Name', 'Email', 'Role', ['Created', 'hide-narrow']], rows, 'No users.', { id: 'users-table', 'aria-label': 'Users' })));
}

// audit.js - the audit log: filters (user, action, target, time range)
// kept in the URL, 50 entries a page, newest first.

import { get } from '../api.js';
import { h, field, form, table, when } from '../dom.js';
import { pageBar } from '../widgets.js';

const LIMIT = 50;

export async function render(view, ctx) {
  view.append(pageBar('Audit log'));
  if (!ctx.can('audit.read')) {
    view.append(h('p', { class: 'card', text: 'Your role cannot read the audit log (audit.read).' }));
    return;
  }
  const q = ctx.query;
  let users = [];
  if (ctx.can('user.read')) users = (await get('/users')).users;
  const userName = new Map(users.map((u) => [u.id, u.name]));

  const user = h('select', { id: 'audit-user', name: 'user' },
    h('option', { value: '', text: 'Anyone' }),
    users.map((u) => h('option', { value: u.id, text: u.name })));
  user.value = q.get('user') || '';
  const action = h('input', { type: 'text', id: 'audit-action', name: 'action', value: q.get('action') || '', placeholder: 'site.create', spellcheck: 'false' });
  const target = h('input', { type: 'text', id: 'audit-target', name: 'target', value: q.get('target') || '', spellcheck: 'false' });
  const since = h('input', { type: 'datetime-local', id: 'audit-since', name: 'since', value: q.get('since') || '' });
  const until = h('input', { type: 'datetime-local', id: 'audit-until', name: 'until', value: q.get('until') || '' });
  const offset = Math.max(0, Number(q.get('offset')) || 0);

  const params = (off) => {
    const p = new URLSearchParams();
    if (user.value) p.set('user', user.value);
    if (action.value.trim()) p.set('action', action.value.trim());
    if (target.value.trim()) p.set('target', target.value.trim());
    if (since.value) p.set('since', since.value);
    if (until.value) p.set('until', until.value);
    if (off) p.set('offset', String(off));
    return p;
  };
  const f = form({ id: 'audit-form', 'aria-label': 'Filter' }, async () => {
    ctx.go(`/audit?${params(0)}`);
  });
  f.append(h('div', { class: 'fields' },
    field('User', user), field('Action', action), field('Target', target),
    field('Since', since), field('Until', until)),
  h('button', { type: 'submit', class: 'primary', id: 'audit-filter', text: 'Filter' }));
  view.append(h('div', { class: 'card' }, f));

  // The API takes RFC 3339 times; the inputs give local times.
  const api = new URLSearchParams();
  const p = params(0);
  for (const [k, v] of p) api.set(k, (k === 'since' || k === 'until') ? new Date(v).toISOString() : v);
  api.set('limit', String(LIMIT));
  api.set('offset', String(offset));
  const r = await get(`/audit?${api}`);
  if (!ctx.alive()) return;

  const rows = r.entries.map((e) => h('tr', { 'data-action': e.action },
    h('td', { class: 'nowrap', text: when(e.at) }),
    h('td', { text: e.userId ? (userName.get(e.userId) || e.userId) : '—' }),
    h('td', { class: 'mono', text: e.action }),
    h('td', { class: 'mono hide-narrow', text: e.target || '—' }),
    h('td', null, h('span', { class: `badge ${/^2/.test(e.result) ? 'ok' : 'bad'}`, text: e.result })),
    h('td', { class: 'mono hide-narrow', text: e.ip || '' }),
    h('td', { class: 'mono hide-narrow', text: e.detail ? JSON.stringify(e.detail) : '' })));
  const pager = h('div', { class: 'actions' },
    h('span', { class: 'muted', text: r.total ? `${offset + 1}–${offset + r.entries.length} of ${r.total}` : 'No entries match.' }),
    offset > 0 ? h('a', { class: 'button', href: `#/audit?${params(Math.max(0, offset - LIMIT))}`, text: 'Newer' }) : null,
    offset + LIMIT < r.total ? h('a', { class: 'button', href: `#/audit?${params(offset + LIMIT)}`, id: 'audit-older', text: 'Older' }) : null);
  view.append(h('div', { class: 'card' },
    table(['When', 'User', 'Action', ['Target', 'hide-narrow'], 'Result', ['IP', 'hide-narrow'], ['Detail', 'hide-narrow']],
      rows, 'No entries match.', { id: 'audit-table', 'aria-label': 'Audit entries' }),
    pager));
}

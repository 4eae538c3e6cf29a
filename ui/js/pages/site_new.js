// site_new.js - creating a site: name, node (or placement), spec. The
// panel answers 202 with the site id; the site page then shows it coming
// up live.

import { get, post } from '../api.js';
import { h, field, form, showOk } from '../dom.js';
import { pageBar } from '../widgets.js';
import { specForm } from '../specform.js';

export async function render(view, ctx) {
  view.append(pageBar('New site'));
  if (!ctx.can('site.create')) {
    view.append(h('p', { class: 'card', text: 'Your role cannot create sites (site.create).' }));
    return;
  }
  const name = h('input', { type: 'text', name: 'name', id: 'site-name', required: true, pattern: '[a-z0-9]([a-z0-9\\-]{0,61}[a-z0-9])?', spellcheck: 'false', autocapitalize: 'none' });
  const node = h('select', { name: 'node', id: 'site-node' }, h('option', { value: '', text: 'Any (placement picks one)' }));
  if (ctx.can('node.read')) {
    const ns = await get('/nodes');
    for (const n of ns.nodes)
      node.append(h('option', { value: n.id, text: `${n.name}${n.online ? '' : ' (offline)'}` }));
  }
  const spec = specForm({});
  const f = form({ id: 'site-form', 'aria-label': 'New site' }, async () => {
    const body = spec.read();
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name.value))
      throw new Error('Name: 1 to 63 of a-z, 0-9 and “-”, starting and ending with a letter or digit.');
    body.name = name.value;
    if (node.value) body.node = node.value;
    const r = await post('/sites', body);
    showOk(`Site ${body.name} is being created.`);
    ctx.go(`/sites/${r.id}`);
  });
  f.append(
    h('div', { class: 'fields' },
      field('Name', name, 'a-z, 0-9 and “-”; also the SSH login suffix.'),
      ctx.can('node.read') ? field('Node', node) : null),
    spec.node,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', id: 'site-create', text: 'Create site' }),
      h('a', { class: 'button', href: '#/', text: 'Cancel' })));
  view.append(h('div', { class: 'card' }, f));
  name.focus();
}

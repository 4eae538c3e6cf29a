// files.js - a site's files, straight from the node's daemon.

import { get } from '../api.js';
import { h } from '../dom.js';
import { pageBar } from '../widgets.js';

export async function render(view, ctx) {
  const site = await get(`/sites/${encodeURIComponent(ctx.params.id)}`);
  view.append(pageBar(`Files of ${site.name}`),
    h('p', { class: 'card', text: 'The file manager needs the daemon’s direct server.' }));
}

// widgets.js - small pieces several pages show: state badges and the
// page header bar.

import { h } from './dom.js';

const STATE_CLASS = {
  running: 'ok',
  starting: 'warn',
  stopping: 'warn',
  crashed: 'bad',
  missing: 'bad',
  offline: 'idle',
  deleted: 'idle',
  unknown: 'idle',
};

// A badge for a site state word ("running"); reason becomes its tooltip.
export function stateBadge(state, reason) {
  const s = state || 'unknown';
  return h('span', { class: `badge ${STATE_CLASS[s] || 'idle'}`, 'data-state': s, title: reason || null, text: s });
}

export function setStateBadge(el, state, reason) {
  const s = state || 'unknown';
  el.className = `badge ${STATE_CLASS[s] || 'idle'}`;
  el.dataset.state = s;
  el.textContent = s;
  el.title = reason || '';
}

export function onlineBadge(online) {
  return h('span', { class: `badge ${online ? 'ok' : 'bad'}`, 'data-online': online ? 'yes' : 'no', text: online ? 'online' : 'offline' });
}

// <div class=bar><h1>title</h1> actions…</div>
export function pageBar(title, ...actions) {
  return h('div', { class: 'bar' }, h('h1', { text: title }), ...actions);
}

// dashboard.js - nodes (online state, CPU, memory, disk, load) and sites
// (state, CPU, memory), fetched once and then kept current by /ws events.

import { get } from '../api.js';
import { h, table, fillRows, bytes, percent, ago } from '../dom.js';
import { num, stateWord } from '../live.js';
import { stateBadge, setStateBadge, onlineBadge, pageBar } from '../widgets.js';

export async function render(view, ctx) {
  const { live, can } = ctx;
  const nodes = new Map(); // id -> {info, stats, row cells}
  const sites = new Map(); // id -> {site, stats, cells}

  const nodeBody = h('tbody');
  const siteBody = h('tbody');

  const newSite = can('site.create')
    ? h('a', { class: 'button primary', href: '#/sites/new', id: 'new-site', text: 'New site' })
    : null;
  view.append(pageBar('Dashboard', newSite));

  // ---------------------------------------------------------- nodes
  function nodeRow(n) {
    const cells = {
      online: h('td', null, onlineBadge(n.info.online)),
      cpu: h('td', { class: 'num' }, '—'),
      mem: h('td', { class: 'num' }, '—'),
      disk: h('td', { class: 'num hide-narrow' }, '—'),
      load: h('td', { class: 'num hide-narrow' }, '—'),
      seen: h('td', { class: 'hide-narrow', text: ago(n.info.lastSeen) }),
    };
    n.cells = cells;
    const tr = h('tr', { 'data-node': n.info.id },
      h('td', null, h('strong', { text: n.info.name }), h('div', { class: 'muted mono', text: n.info.hostname })),
      cells.online, cells.cpu, cells.mem, cells.disk, cells.load, cells.seen);
    paintNode(n);
    return tr;
  }

  function paintNode(n) {
    if (!n.cells) return;
    n.cells.online.replaceChildren(onlineBadge(n.info.online));
    n.cells.seen.textContent = ago(n.info.lastSeen);
    const s = n.stats;
    if (!s) return;
    n.cells.cpu.textContent = percent(num(s.cpuPercent));
    n.cells.mem.textContent = `${bytes(num(s.memoryUsedBytes))} / ${bytes(num(s.memoryTotalBytes))}`;
    n.cells.disk.textContent = `${bytes(num(s.diskUsedBytes))} / ${bytes(num(s.diskTotalBytes))}`;
    n.cells.load.textContent = num(s.load1).toFixed(2);
  }

  if (can('node.read')) {
    view.append(h('div', { class: 'card', id: 'nodes' },
      h('h2', { text: 'Nodes' }),
      table([
        'Node', 'State', ['CPU', 'num'], ['Memory', 'num'], ['Disk', 'num hide-narrow'],
        ['Load', 'num hide-narrow'], ['Last seen', 'hide-narrow']], [], '', { 'aria-label': 'Nodes' })));
    view.querySelector('#nodes tbody').replaceWith(nodeBody);
  }

  // ---------------------------------------------------------- sites
  function siteRow(x) {
    const s = x.site;
    const cells = {
      state: stateBadge(s.status && s.status.state, s.status && s.status.reason),
      cpu: h('td', { class: 'num' }, '—'),
      mem: h('td', { class: 'num' }, '—'),
    };
    x.cells = cells;
    return h('tr', { 'data-site': s.id, 'data-name': s.name },
      h('td', null, h('a', { href: `#/sites/${s.id}`, text: s.name })),
      h('td', { class: 'hide-narrow', text: s.node ? s.node.name : s.nodeId }),
      h('td', null, cells.state),
      cells.cpu, cells.mem,
      h('td', { class: 'hide-narrow mono', text: (s.domains || []).join(', ') || '—' }));
  }

  function paintSite(x) {
    if (!x.cells) return;
    const st = x.site.status || {};
    setStateBadge(x.cells.state, st.state, st.reason);
    if (x.stats && st.state === 'running') {
      x.cells.cpu.textContent = percent(num(x.stats.cpuPercent));
      const lim = num(x.stats.memoryLimitBytes);
      x.cells.mem.textContent = bytes(num(x.stats.memoryBytes)) + (lim ? ` / ${bytes(lim)}` : '');
    } else {
      x.cells.cpu.textContent = '—';
      x.cells.mem.textContent = '—';
    }
  }

  view.append(h('div', { class: 'card', id: 'sites' },
    h('h2', { text: 'Sites' }),
    table(['Site', ['Node', 'hide-narrow'], 'State', ['CPU', 'num'], ['Memory', 'num'], ['Domains', 'hide-narrow']],
      [], '', { 'aria-label': 'Sites' })));
  view.querySelector('#sites tbody').replaceWith(siteBody);

  // ---------------------------------------------------------- data
  async function load() {
    const [ns, ss] = await Promise.all([
      can('node.read') ? get('/nodes') : Promise.resolve({ nodes: [] }),
      get('/sites'),
    ]);
    if (!ctx.alive()) return;
    const oldNodes = new Map(nodes);
    nodes.clear();
    for (const info of ns.nodes) {
      const old = oldNodes.get(info.id);
      nodes.set(info.id, { info, stats: old && old.stats });
    }
    fillRows(nodeBody, 7, [...nodes.values()].map(nodeRow), 'No node has registered yet. Start berth-daemon on a machine with Docker.');
    const oldSites = new Map(sites);
    sites.clear();
    for (const site of ss.sites) {
      const old = oldSites.get(site.id);
      sites.set(site.id, { site, stats: old && old.stats });
    }
    fillRows(siteBody, 6, [...sites.values()].map(siteRow),
      can('site.create') ? 'No sites yet. Create one with “New site”.' : 'You have no sites.');
    sites.forEach(paintSite);
  }

  await load();

  const offs = [
    live.on('node.online', (m) => {
      const n = nodes.get(m.nodeId);
      if (!n) { load().catch(() => {}); return; }
      n.info.online = !!(m.data && m.data.online);
      n.info.lastSeen = new Date().toISOString();
      paintNode(n);
    }),
    live.on('node.stats', (m) => {
      const n = nodes.get(m.nodeId);
      if (!n) return;
      n.stats = m.data;
      n.info.online = true;
      n.info.lastSeen = new Date().toISOString();
      paintNode(n);
    }),
    live.on('site.status', (m) => {
      const x = sites.get(m.siteId);
      if (!x) { load().catch(() => {}); return; }
      const d = m.data || {};
      x.site.status = { state: stateWord(d.state), reason: d.reason || null, exitCode: d.exitCode || 0 };
      paintSite(x);
    }),
    live.on('site.stats', (m) => {
      const x = sites.get(m.siteId);
      if (!x) return;
      x.stats = m.data;
      paintSite(x);
    }),
    live.on('resync', () => { load().catch(() => {}); }),
  ];
  // Sites created or deleted elsewhere: the list is refreshed now and then.
  const timer = setInterval(() => { load().catch(() => {}); }, 30000);
  ctx.onLeave(() => { offs.forEach((f) => f()); clearInterval(timer); });
}

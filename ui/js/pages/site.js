// site.js - one site: its state (live), power buttons, CPU and memory
// charts fed by /ws stats, the console (xterm.js, straight to the
// daemon), domains, settings, per-site grants, and deletion.

import { get, post, patch, put, del, SITE_PERMISSIONS, holds } from '../api.js';
import { h, field, form, table, fillRows, bytes, percent, when, showError, showInfo, showOk, confirmDialog, messageOf } from '../dom.js';
import { num, stateWord } from '../live.js';
import { stateBadge, setStateBadge, onlineBadge, pageBar } from '../widgets.js';
import { specForm } from '../specform.js';
import { liveCharts } from '../charts.js';

const POWER = [
  ['start', 'Start', 'Starting'],
  ['stop', 'Stop', 'Stopping'],
  ['restart', 'Restart', 'Restarting'],
  ['kill', 'Kill', 'Killing'],
];

export async function render(view, ctx) {
  const id = ctx.params.id;
  let site = await get(`/sites/${encodeURIComponent(id)}`);
  if (!ctx.alive()) return;
  const { live, can } = ctx;

  // ---------------------------------------------------------- header
  const badge = stateBadge(site.status.state, site.status.reason);
  badge.id = 'site-state';
  const reason = h('span', { class: 'muted', id: 'site-reason' });
  const nodeBadge = h('span', null, onlineBadge(site.node.online));
  const desired = h('span', { id: 'site-desired', text: site.desiredState });
  const powerButtons = POWER.map(([action, label]) =>
    h('button', { type: 'button', id: `power-${action}`, class: action === 'kill' ? 'danger' : null, 'data-action': action, text: label }));
  const powerBox = h('div', { class: 'actions', role: 'group', 'aria-label': 'Power' }, powerButtons);
  view.append(
    pageBar(site.name,
      h('a', { class: 'button', href: `#/sites/${id}/files`, id: 'open-files', text: 'Files' })),
    h('div', { class: 'card' },
      h('div', { class: 'bar' },
        h('div', null, 'State: ', badge, ' ', reason),
        h('div', null, 'Node: ', h('strong', { text: site.node.name }), ' ', nodeBadge),
        h('div', { class: 'muted' }, 'Desired: ', desired)),
      powerBox));

  function paintState() {
    setStateBadge(badge, site.status.state, site.status.reason);
    desired.textContent = site.desiredState;
    reason.textContent = site.status.reason ? `(${site.status.reason})` : '';
    const st = site.status.state;
    // A grant may allow power without the role: the panel decides, and
    // its refusal is shown.
    powerButtons.forEach((b) => {
      const a = b.dataset.action;
      b.disabled = (a === 'start' && (st === 'running' || st === 'starting')) ||
        ((a === 'stop' || a === 'restart' || a === 'kill') && (st === 'offline' || st === 'deleted'));
    });
  }
  paintState();

  powerBox.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button[data-action]');
    if (!b) return;
    const action = b.dataset.action;
    if (action === 'kill' && !(await confirmDialog(`Kill ${site.name}? Its processes get SIGKILL without a chance to save anything.`, 'Kill')))
      return;
    b.disabled = true;
    try {
      await post(`/sites/${id}/power`, { action });
      site.desiredState = action === 'stop' || action === 'kill' ? 'stopped' : 'running';
      showInfo(`${POWER.find((p) => p[0] === action)[2]} ${site.name}…`);
    } catch (e) {
      showError(e);
    } finally {
      paintState();
    }
  });

  // ---------------------------------------------------------- stats
  const figures = {
    cpu: h('dd', { id: 'stat-cpu', text: '—' }),
    mem: h('dd', { id: 'stat-mem', text: '—' }),
    net: h('dd', { id: 'stat-net', text: '—' }),
    disk: h('dd', { id: 'stat-disk', text: '—' }),
    pids: h('dd', { id: 'stat-pids', text: '—' }),
  };
  const cpuBox = h('div', { class: 'chart', id: 'chart-cpu', 'data-points': '0', role: 'img', 'aria-label': 'CPU use over the last minutes' });
  const memBox = h('div', { class: 'chart', id: 'chart-mem', 'data-points': '0', role: 'img', 'aria-label': 'Memory use over the last minutes' });
  view.append(h('div', { class: 'card', id: 'stats' },
    h('h2', { text: 'Resources' }),
    h('dl', { class: 'stats' },
      h('div', null, h('dt', { text: 'CPU' }), figures.cpu),
      h('div', null, h('dt', { text: 'Memory' }), figures.mem),
      h('div', null, h('dt', { text: 'Network in / out' }), figures.net),
      h('div', null, h('dt', { text: 'Disk' }), figures.disk),
      h('div', null, h('dt', { text: 'Processes' }), figures.pids)),
    h('div', { class: 'grid' },
      h('div', null, h('h3', { text: 'CPU %' }), cpuBox),
      h('div', null, h('h3', { text: 'Memory' }), memBox))));
  let charts = null;
  liveCharts(cpuBox, memBox).then((c) => {
    if (!ctx.alive()) { c.destroy(); return; }
    charts = c;
  }).catch((e) => {
    cpuBox.replaceChildren(h('p', { class: 'muted', text: `Charts are unavailable: ${messageOf(e)}` }));
    memBox.replaceChildren();
  });
  ctx.onLeave(() => { if (charts) charts.destroy(); });

  function paintStats(s) {
    const lim = num(s.memoryLimitBytes);
    figures.cpu.textContent = percent(num(s.cpuPercent));
    figures.mem.textContent = bytes(num(s.memoryBytes)) + (lim ? ` of ${bytes(lim)}` : '');
    figures.net.textContent = `${bytes(num(s.netRxBytes))} / ${bytes(num(s.netTxBytes))}`;
    figures.disk.textContent = bytes(num(s.diskBytes));
    figures.pids.textContent = String(num(s.pids));
    if (charts) charts.add(num(s.atMs) || Date.now(), num(s.cpuPercent), num(s.memoryBytes), lim);
    cpuBox.dataset.points = String(Number(cpuBox.dataset.points) + 1);
    memBox.dataset.points = cpuBox.dataset.points;
  }

  // ---------------------------------------------------------- console
  const consoleCard = h('div', { class: 'card', id: 'console-card' }, h('h2', { text: 'Console' }));
  view.append(consoleCard);
  import('../console.js')
    .then((m) => { if (ctx.alive()) m.mountConsole(consoleCard, site, ctx); })
    .catch((e) => consoleCard.append(h('p', { class: 'muted', text: `The console is unavailable: ${messageOf(e)}` })));

  // ---------------------------------------------------------- domains
  // Certificate states come from the edge through the panel
  // (site.certificates: [{domain, state, notAfter, reason, nextAttempt}]).
  const CERT_CLASS = { valid: 'ok', pending: 'warn', failed: 'bad', removed: 'idle', unknown: 'idle' };
  const domainList = h('ul', { id: 'domains' });
  function certText(c) {
    if (!c) return 'certificate: not reported';
    if (c.state === 'valid') return `certificate valid${c.notAfter ? ` until ${when(c.notAfter)}` : ''}`;
    if (c.state === 'failed') return `certificate failed${c.nextAttempt ? `, next try ${when(c.nextAttempt)}` : ''}`;
    if (c.state === 'pending') return 'certificate being obtained';
    return `certificate ${c.state}`;
  }
  function paintDomains() {
    domainList.replaceChildren();
    if (!site.domains.length) {
      domainList.append(h('li', { class: 'empty', text: 'No domains. Add some in Settings.' }));
      return;
    }
    const certs = new Map((site.certificates || []).map((c) => [c.domain, c]));
    for (const d of site.domains) {
      const c = certs.get(d);
      domainList.append(h('li', { 'data-domain': d },
        h('a', { href: `https://${d}/`, target: '_blank', rel: 'noopener', class: 'mono', text: d }), ' ',
        h('span', { class: `badge ${CERT_CLASS[c ? c.state : 'unknown'] || 'idle'}`, 'data-cert': c ? c.state : 'unknown', text: certText(c) }),
        c && c.reason ? h('span', { class: 'muted', text: ` ${c.reason}` }) : null));
    }
  }
  paintDomains();
  view.append(h('div', { class: 'card' }, h('h2', { text: 'Domains' }), domainList));

  // ---------------------------------------------------------- settings
  if (can('site.update') || can('site.read')) {
    const spec = specForm(site.spec, site.domains);
    const f = form({ id: 'settings-form', 'aria-label': 'Settings' }, async () => {
      const body = spec.read();
      await patch(`/sites/${id}`, body);
      showOk('Settings saved; the site is being updated.');
      site = await get(`/sites/${id}`);
      paintDomains();
    });
    f.append(spec.node, h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', id: 'settings-save', text: 'Save settings' })));
    view.append(h('details', { class: 'card' }, h('summary', null, h('h2', { style: 'display:inline', text: 'Settings' })), f));
  }

  // ---------------------------------------------------------- grants
  if (can('site.update')) view.append(await grantsCard(id, ctx));

  // ---------------------------------------------------------- delete
  if (can('site.delete')) {
    const purge = h('input', { type: 'checkbox', id: 'delete-purge' });
    const btn = h('button', { type: 'button', class: 'danger', id: 'site-delete', text: 'Delete site' });
    btn.addEventListener('click', async () => {
      purge.checked = false;
      const ok = await confirmDialog(`Delete ${site.name}? Its container is removed.`, 'Delete',
        h('p', null, h('label', null, purge, ' Also delete its files')));
      if (!ok) return;
      btn.disabled = true;
      try {
        await del(`/sites/${id}${purge.checked ? '?purge=true' : ''}`);
        showOk(`${site.name} is being deleted.`);
        ctx.go('/');
      } catch (e) {
        showError(e);
        btn.disabled = false;
      }
    });
    view.append(h('div', { class: 'card' }, h('h2', { text: 'Delete' }),
      h('p', { class: 'muted', text: 'Stops the site and removes its container; its files stay unless you choose otherwise.' }), btn));
  }

  // ---------------------------------------------------------- live
  const offs = [
    live.on('site.status', (m) => {
      if (m.siteId !== id) return;
      const d = m.data || {};
      site.status = { state: stateWord(d.state), reason: d.reason || null };
      paintState();
      if (site.status.state !== 'running') {
        figures.cpu.textContent = '—';
      }
    }),
    live.on('site.stats', (m) => {
      if (m.siteId === id) paintStats(m.data || {});
    }),
    live.on('node.online', (m) => {
      if (m.nodeId !== site.nodeId) return;
      site.node.online = !!(m.data && m.data.online);
      nodeBadge.replaceChildren(onlineBadge(site.node.online));
    }),
    live.on('resync', () => refetch()),
  ];
  // Certificates and domains change without events: fetched now and then.
  async function refetch() {
    try {
      const fresh = await get(`/sites/${id}`);
      if (!ctx.alive()) return;
      site = fresh;
      paintState();
      paintDomains();
    } catch (e) {
      if (e.status === 404 && ctx.alive()) { showInfo('This site no longer exists.'); ctx.go('/'); }
    }
  }
  const timer = setInterval(refetch, 15000);
  ctx.onLeave(() => { offs.forEach((f) => f()); clearInterval(timer); });
}

// The per-site grants: who holds what on this site, and a form to give or
// change a user's grant (empty: revoke).
async function grantsCard(id, ctx) {
  const card = h('div', { class: 'card', id: 'grants' }, h('h2', { text: 'Access' }));
  const body = h('tbody');
  let users = [];
  try {
    users = ctx.can('user.read') ? (await get('/users')).users : [];
  } catch (e) {
    users = [];
  }
  async function load() {
    const g = await get(`/sites/${id}/grants`);
    fillRows(body, 3, g.grants.map((x) => [
      h('span', { text: x.name }),
      h('span', { class: 'mono', text: x.permissions.join(', ') || '—' }),
      h('button', { type: 'button', class: 'small', text: 'Edit', onclick: () => pick(x.userId, x.permissions) }),
    ]), 'Nobody holds a grant on this site; roles decide.');
  }
  const who = users.length
    ? h('select', { id: 'grant-user', name: 'user' }, users.map((u) => h('option', { value: u.id, text: u.name })))
    : h('input', { type: 'text', id: 'grant-user', name: 'user', placeholder: 'user id', spellcheck: 'false' });
  const boxes = SITE_PERMISSIONS.map((p) => h('input', { type: 'checkbox', name: 'perm', value: p, id: `grant-${p.replace(/\./g, '-')}` }));
  function pick(userId, perms) {
    who.value = userId;
    boxes.forEach((b) => { b.checked = holds(perms, b.value); });
    who.focus();
  }
  const f = form({ id: 'grant-form', 'aria-label': 'Give access' }, async () => {
    if (!who.value) throw new Error('Choose a user.');
    const permissions = boxes.filter((b) => b.checked).map((b) => b.value);
    await put(`/sites/${id}/grants/${encodeURIComponent(who.value)}`, { permissions });
    showOk(permissions.length ? 'Access granted.' : 'Access revoked.');
    await load();
  });
  f.append(field('User', who),
    h('fieldset', null, h('legend', { text: 'Permissions on this site' }),
      h('div', { class: 'checks' }, boxes.map((b) => h('label', { for: b.id }, b, b.value)))),
    h('button', { type: 'submit', class: 'primary', id: 'grant-save', text: 'Save access' }));
  card.append(table(['User', 'Permissions', ''], [], ''), f);
  card.querySelector('tbody').replaceWith(body);
  try {
    await load();
  } catch (e) {
    fillRows(body, 3, [], `The grants could not be read: ${messageOf(e)}`);
  }
  return card;
}

// main.js - the app: session, the signed-in user and their permissions,
// the live socket, the navigation and a hash router ("#/sites/<id>") that
// renders one page module at a time into <main>.
//
// A page module exports render(view, ctx): it fills view (a <section>)
// and may register cleanups with ctx.onLeave(fn), which run when the user
// navigates away. ctx.alive() turns false from then on, so a page that
// awaited something can tell it is no longer shown.

import { initSession, onSession, currentSession, logout, get, holds, freshToken } from './api.js';
import { live } from './live.js';
import { h, clear, showError, clearMessages, notify } from './dom.js';

// The routes: pattern (":x" captures a segment) and the page module.
const routes = [
  ['/', () => import('./pages/dashboard.js'), 'dashboard'],
  ['/sites/new', () => import('./pages/site_new.js'), 'dashboard'],
  ['/sites/:id', () => import('./pages/site.js'), 'dashboard'],
  ['/sites/:id/files', () => import('./pages/files.js'), 'dashboard'],
  ['/users', () => import('./pages/users.js'), 'users'],
  ['/users/new', () => import('./pages/user_edit.js'), 'users'],
  ['/users/:id', () => import('./pages/user_edit.js'), 'users'],
  ['/roles', () => import('./pages/roles.js'), 'roles'],
  ['/roles/new', () => import('./pages/role_edit.js'), 'roles'],
  ['/roles/:id', () => import('./pages/role_edit.js'), 'roles'],
  ['/audit', () => import('./pages/audit.js'), 'audit'],
  ['/keys', () => import('./pages/keys.js'), 'keys'],
];

const main = document.getElementById('main');
const me = { user: null, role: null, perms: [] };
let page = null; // {leave: [fn], alive}
let renderSeq = 0;

export function can(name) {
  return holds(me.perms, name);
}

export function go(path) {
  if (location.hash === `#${path}`) route();
  else location.hash = `#${path}`;
}

function match(path) {
  for (const [pattern, load, nav] of routes) {
    const ps = pattern.split('/');
    const xs = path.split('/');
    if (ps.length !== xs.length) continue;
    const params = {};
    let ok = true;
    for (let i = 0; i < ps.length && ok; i++) {
      if (ps[i].startsWith(':')) {
        if (xs[i] === '') ok = false;
        else params[ps[i].slice(1)] = decodeURIComponent(xs[i]);
      } else if (ps[i] !== xs[i]) {
        ok = false;
      }
    }
    if (ok) return { load, params, nav };
  }
  return null;
}

function leavePage() {
  if (!page) return;
  page.alive = false;
  for (const fn of page.leave) {
    try { fn(); } catch (e) { console.error(e); }
  }
  page = null;
}

async function route() {
  const seq = ++renderSeq;
  leavePage();
  if (!currentSession()) {
    showLogin();
    return;
  }
  const hash = location.hash.startsWith('#/') ? location.hash.slice(1) : '/';
  const [path, qs] = hash.split('?');
  const m = match(path);
  document.querySelectorAll('#nav a').forEach((a) => {
    if (m && a.dataset.nav === m.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  document.getElementById('nav').classList.remove('open');
  document.getElementById('menu-toggle').setAttribute('aria-expanded', 'false');
  const view = h('section', { class: 'page' });
  clear(main).append(view);
  if (!m) {
    view.append(h('h1', { text: 'Not found' }),
      h('p', null, 'There is no page here. ', h('a', { href: '#/', text: 'Go to the dashboard' }), '.'));
    return;
  }
  const current = { leave: [], alive: true };
  page = current;
  const ctx = {
    params: m.params,
    query: new URLSearchParams(qs || ''),
    me,
    can,
    go,
    live,
    onLeave: (fn) => current.leave.push(fn),
    alive: () => current.alive && seq === renderSeq,
  };
  try {
    const mod = await m.load();
    if (!ctx.alive()) return;
    view.append(h('p', { class: 'loading', text: 'Loading…' }));
    const loading = view.lastChild;
    await mod.render(view, ctx);
    loading.remove();
  } catch (e) {
    if (!ctx.alive()) return;
    clear(view).append(h('h1', { text: 'This page could not be shown' }));
    showError(e);
  }
  const h1 = view.querySelector('h1');
  document.title = h1 ? `${h1.textContent} · berth` : 'berth';
}

// ------------------------------------------------------------ login

async function showLogin(reason) {
  leavePage();
  document.getElementById('top').hidden = true;
  document.title = 'Log in · berth';
  const view = h('section', { class: 'page' });
  clear(main).append(view);
  const mod = await import('./pages/login.js');
  mod.render(view, { reason });
}

// Loads the signed-in user and their role's permissions.
async function loadMe() {
  await freshToken(); // the stored access token may be stale: its sub too
  const s = currentSession();
  me.user = await get(`/user/${encodeURIComponent(s.userId)}`);
  try {
    me.role = await get(`/role/${me.user.roleId}`);
    me.perms = me.role.permissions || [];
  } catch (e) {
    me.role = null;
    me.perms = [];
    showError(`Your role could not be read: ${e.message}`);
  }
  const who = document.getElementById('whoami');
  who.textContent = me.user.name;
  who.href = `#/users/${me.user.id}`;
  who.title = me.role ? `Role: ${me.role.name}` : '';
  document.querySelectorAll('#nav a[data-perm]').forEach((a) => {
    a.hidden = !can(a.dataset.perm);
  });
}

async function enter() {
  try {
    await loadMe();
  } catch (e) {
    if (!currentSession()) return; // the session ended meanwhile
    showError(e);
    return;
  }
  document.getElementById('top').hidden = false;
  live.start();
  route();
}

// ------------------------------------------------------------ start

function wireChrome() {
  document.getElementById('logout').addEventListener('click', () => logout());
  document.getElementById('skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    main.focus();
  });
  const toggle = document.getElementById('menu-toggle');
  toggle.addEventListener('click', () => {
    const nav = document.getElementById('nav');
    const open = nav.classList.toggle('open');
    toggle.setAttribute('aria-expanded', String(open));
  });
  const badge = document.getElementById('live-state');
  live.addEventListener('state', (ev) => {
    const { state, why } = ev.detail;
    badge.dataset.state = state === 'live' ? 'live' : state === 'connecting' ? 'connecting' : 'off';
    badge.textContent = state === 'live' ? 'live' : state === 'connecting' ? 'reconnecting…' : 'offline';
    badge.title = why || (state === 'live' ? 'Live updates are flowing' : '');
  });
  window.addEventListener('hashchange', () => {
    if (location.hash.startsWith('#/') || location.hash === '') route();
  });
}

wireChrome();
onSession((s, reason) => {
  if (s) {
    clearMessages();
    enter();
  } else {
    live.stop();
    me.user = null;
    me.perms = [];
    showLogin(reason);
    if (reason) notify('info', reason);
  }
});
if (initSession()) enter();
else showLogin();

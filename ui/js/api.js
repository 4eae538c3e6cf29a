// api.js - the panel's HTTP API and the browser session.
//
// A session is the pair of tokens POST /auth/login returns: an access
// token (15 minutes, sent as "Authorization: Bearer") and a refresh token
// (7 days, rotated by every GET /auth/refresh; presenting an old one
// revokes the whole login). Both are kept in localStorage so that a reload
// or a second tab stays logged in. Rotation makes concurrent refreshes
// dangerous (two tabs presenting the same refresh token would revoke the
// login), so a refresh runs under a Web Lock shared by every tab, and
// inside it adopts tokens another tab already refreshed. The access token
// is refreshed a minute before it expires, and once more when a request is
// answered 401 anyway (clock skew, a panel restart with new keys).
//
// Every failure becomes an ApiError carrying the HTTP status, the panel's
// error code and its message, so pages can show them as they are.

const STORE_KEY = 'berth.session';
const REFRESH_EARLY_S = 60;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let session = null; // {access, refresh, exp, userId}
let refreshTimer = 0;
let refreshing = null;
const sessionListeners = new Set();

// The claims of a token (base64url JSON before the dot), or {}.
export function claimsOf(token) {
  try {
    const part = token.split('.')[0].replace(/-/g, '+').replace(/_/g, '/');
    const pad = part + '='.repeat((4 - (part.length % 4)) % 4);
    const text = new TextDecoder().decode(Uint8Array.from(atob(pad), (c) => c.charCodeAt(0)));
    return JSON.parse(text);
  } catch (e) {
    return {};
  }
}

function fromTokens(access, refresh) {
  const c = claimsOf(access);
  return { access, refresh, exp: Number(c.exp) || 0, userId: c.sub || '' };
}

function readStore() {
  try {
    const s = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
    return s && s.access && s.refresh ? fromTokens(s.access, s.refresh) : null;
  } catch (e) {
    return null;
  }
}

function writeStore(s) {
  try {
    if (s) localStorage.setItem(STORE_KEY, JSON.stringify({ access: s.access, refresh: s.refresh }));
    else localStorage.removeItem(STORE_KEY);
  } catch (e) {
    // Private mode without storage: the session lives in this tab only.
  }
}

function now() {
  return Date.now() / 1000;
}

function setSession(s, reason) {
  const was = session;
  session = s;
  writeStore(s);
  clearTimeout(refreshTimer);
  if (s) {
    const wait = Math.max(5, s.exp - now() - REFRESH_EARLY_S);
    refreshTimer = setTimeout(() => { refresh().catch(() => {}); }, wait * 1000);
  }
  if (!!was !== !!s || (was && s && was.userId !== s.userId))
    sessionListeners.forEach((fn) => fn(s, reason));
}

// Calls fn(session, reason) when the user logs in or out (reason: a
// message when the session ended by itself).
export function onSession(fn) {
  sessionListeners.add(fn);
  return () => sessionListeners.delete(fn);
}

export function currentSession() {
  return session;
}

export function accessToken() {
  return session ? session.access : null;
}

// Loads the stored session and follows other tabs' logins and logouts.
export function initSession() {
  const s = readStore();
  if (s) setSession(s);
  window.addEventListener('storage', (ev) => {
    if (ev.key !== STORE_KEY) return;
    const other = readStore();
    if (!other) {
      if (session) expire('You logged out in another tab.');
    } else if (!session || other.access !== session.access) {
      setSession(other);
    }
  });
  return session;
}

function expire(reason) {
  setSession(null, reason);
}

async function rawFetch(method, path, body, bearer) {
  const headers = {};
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let payload;
  if (body !== undefined && body !== null) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'ENET', `The panel cannot be reached (${e.message}). Check your connection and that the panel is running.`);
  }
  const text = await resp.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch (e) { json = null; }
  }
  if (!resp.ok) {
    const err = (json && json.error) || {};
    const msg = err.message || (json && json.message) || `${method} ${path} failed: HTTP ${resp.status}`;
    const e = new ApiError(resp.status, err.code || `HTTP${resp.status}`, msg);
    e.retryAfter = resp.headers.get('Retry-After');
    throw e;
  }
  return json;
}

export async function login(username, password) {
  const body = username.includes('@') ? { email: username, password } : { username, password };
  let j;
  try {
    j = await rawFetch('POST', '/auth/login', body);
  } catch (e) {
    if (e.status === 429 && e.retryAfter)
      e.message = `Too many failed attempts. Try again in ${e.retryAfter} s.`;
    else if (e.status === 401)
      e.message = 'Wrong user name or password.';
    throw e;
  }
  setSession(fromTokens(j.accessToken, j.refreshToken));
  return session;
}

export async function logout() {
  const s = session;
  setSession(null);
  if (s) {
    try {
      await rawFetch('POST', '/auth/logout', null, s.refresh);
    } catch (e) {
      // The tokens are gone from this browser either way.
    }
  }
}

async function doRefresh() {
  // Another tab may have refreshed while we waited for the lock.
  const stored = readStore();
  if (stored && session && stored.refresh !== session.refresh && stored.exp - now() > REFRESH_EARLY_S) {
    setSession(stored);
    return;
  }
  const s = stored || session;
  if (!s) throw new ApiError(401, 'EAUTH', 'You are logged out.');
  try {
    const j = await rawFetch('GET', '/auth/refresh', null, s.refresh);
    setSession(fromTokens(j.accessToken, j.refreshToken));
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      expire('Your session has ended; please log in again.');
      throw new ApiError(401, 'EAUTH', 'Your session has ended; please log in again.');
    }
    throw e;
  }
}

// Refreshes the access token once, whoever asks (concurrent callers share
// the one refresh; tabs take turns through a Web Lock where available).
export function refresh() {
  if (!refreshing) {
    const run = navigator.locks ? navigator.locks.request('berth-refresh', doRefresh) : doRefresh();
    refreshing = run.finally(() => { refreshing = null; });
  }
  return refreshing;
}

// An access token valid for at least another 30 s.
export async function freshToken() {
  if (!session) throw new ApiError(401, 'EAUTH', 'You are logged out.');
  if (session.exp - now() < 30) await refresh();
  return session.access;
}

// Sends a request with the session's access token. Returns the parsed
// JSON body (null when empty); throws ApiError.
export async function api(method, path, body) {
  const token = await freshToken();
  try {
    return await rawFetch(method, path, body, token);
  } catch (e) {
    if (e.status !== 401 || !session) throw e;
    await refresh();
    return rawFetch(method, path, body, session.access);
  }
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body || {});
export const patch = (path, body) => api('PATCH', path, body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

// ------------------------------------------------------------ permissions

// The permission names of auth.h, in its order, with the wildcards a role
// may hold.
export const PERMISSIONS = [
  ['user.read', 'List and read users'],
  ['user.create', 'Create users'],
  ['user.update', 'Change other users and roles of users'],
  ['user.delete', 'Delete users'],
  ['role.read', 'List and read roles'],
  ['role.create', 'Create roles'],
  ['role.update', 'Change roles'],
  ['role.delete', 'Delete roles'],
  ['node.read', 'See nodes'],
  ['node.manage', 'Manage nodes'],
  ['site.read', 'See sites'],
  ['site.create', 'Create sites'],
  ['site.update', 'Change sites and their grants'],
  ['site.delete', 'Delete sites'],
  ['site.power', 'Start, stop, restart, kill'],
  ['site.console.read', 'Watch consoles'],
  ['site.console.write', 'Type into consoles'],
  ['site.files.read', 'Read files'],
  ['site.files.write', 'Change files'],
  ['audit.read', 'Read the audit log'],
];
export const WILDCARDS = ['*', 'user.*', 'role.*', 'node.*', 'site.*', 'site.console.*', 'site.files.*'];
// The permissions a per-site grant may carry.
export const SITE_PERMISSIONS = PERMISSIONS.map((p) => p[0])
  .filter((n) => n.startsWith('site.') && n !== 'site.create');

// Returns true when the names held (a role's list) grant name: exactly,
// by "*", or by a prefix wildcard ("site.*", "site.console.*").
export function holds(names, name) {
  for (const n of names || []) {
    if (n === '*' || n === name) return true;
    if (n.endsWith('.*') && name.startsWith(n.slice(0, -1))) return true;
  }
  return false;
}

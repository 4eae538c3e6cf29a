// daemon.js - reaching a node's daemon directly (consoles and files do not
// go through the panel): tokens from the panel, and when the daemon cannot
// be reached, an explanation built from its /health instead of a spinner.
//
// A browser hides why a cross-origin request failed, so diagnose() tries
// the causes it can tell apart, in order:
//
//   no address       the node has no public URL (BERTH_DAEMON_PUBLIC_URL)
//   bad address      the URL does not parse, or is not http(s)
//   mixed content    an https panel cannot call an http daemon
//   timeout          nothing answers within 5 s: a firewall drops packets
//                    or the host is down
//   origin           /health (which allows any origin) names another
//                    panel origin: the daemon refuses this page (CORS)
//   CORS             the daemon answers (a no-cors request succeeds) but
//                    the CORS request failed
//   unreachable      nothing answered at all: a DNS name that does not
//                    resolve, a closed port, or (https) a certificate the
//                    browser does not trust; the three look alike from a
//                    page, so the message names them with how to check
//   wrong node       /health answers for another node id
//   unhealthy        /health answered but not ok

import { post, ApiError, claimsOf } from './api.js';

const HEALTH_TIMEOUT_MS = 5000;

// Asks the panel for a token to reach site's daemon. scope: "console" or
// "files". Resolves to {token, expiresAt, url, scope}.
export function directToken(siteId, scope) {
  return post(`/sites/${encodeURIComponent(siteId)}/tokens`, { scope });
}

// The daemon's base URL without a final slash.
export function baseOf(url) {
  return String(url || '').replace(/\/+$/, '');
}

async function timed(url, opts) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), HEALTH_TIMEOUT_MS);
  const t0 = performance.now();
  try {
    const resp = await fetch(url, Object.assign({ signal: ctl.signal, cache: 'no-store', credentials: 'omit' }, opts));
    return { resp, ms: performance.now() - t0 };
  } catch (e) {
    return { error: e, aborted: ctl.signal.aborted, ms: performance.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

// Finds out whether the daemon at url can be used from this page. Resolves
// to {ok: true, health} or {ok: false, problem, message, hints: [..]}.
// nodeId, when given, is the node the daemon should say it is.
export async function diagnose(url, nodeId) {
  if (!url) {
    return {
      ok: false, problem: 'no-address',
      message: 'This node has no public address, so the browser cannot reach its daemon.',
      hints: ['Set BERTH_DAEMON_PUBLIC_URL on the node (e.g. https://node1.example.com:8443) and restart berth-daemon.'],
    };
  }
  let u;
  try {
    u = new URL(url);
  } catch (e) {
    return { ok: false, problem: 'bad-address', message: `The node's public address “${url}” is not a URL.`, hints: ['Fix BERTH_DAEMON_PUBLIC_URL on the node.'] };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return { ok: false, problem: 'bad-address', message: `The node's public address “${url}” must start with https:// or http://.`, hints: ['Fix BERTH_DAEMON_PUBLIC_URL on the node.'] };
  }
  if (location.protocol === 'https:' && u.protocol === 'http:') {
    return {
      ok: false, problem: 'mixed-content',
      message: `This panel is served over HTTPS, and browsers refuse plain HTTP connections from it to the daemon at ${u.origin} (mixed content).`,
      hints: ['Give the daemon a TLS certificate (BERTH_DAEMON_TLS_CERT / BERTH_DAEMON_TLS_KEY) and an https:// BERTH_DAEMON_PUBLIC_URL.'],
    };
  }
  const health = `${baseOf(url)}/health`;
  const r = await timed(health, { mode: 'cors' });
  if (r.resp) {
    let body = null;
    try { body = await r.resp.json(); } catch (e) { body = null; }
    if (!r.resp.ok || !body || body.ok === false) {
      return {
        ok: false, problem: 'unhealthy',
        message: `The daemon at ${u.origin} answered /health with HTTP ${r.resp.status}${body && body.error ? `: ${body.error.message || body.error}` : ''}.`,
        hints: ['Look at berth-daemon\'s log on the node.'],
      };
    }
    if (body.panelOrigin && body.panelOrigin !== location.origin) {
      return {
        ok: false, problem: 'origin',
        message: `The daemon at ${u.origin} only accepts the panel at ${body.panelOrigin}, but this page is ${location.origin}: it refuses our requests (CORS).`,
        hints: [`Set BERTH_DAEMON_PANEL_ORIGIN=${location.origin} on the node and restart berth-daemon, or open the panel at ${body.panelOrigin}.`],
      };
    }
    if (nodeId && body.node && body.node !== nodeId) {
      return {
        ok: false, problem: 'wrong-node',
        message: `The address ${u.origin} answers for another node (${body.node}), not this site's node (${nodeId}).`,
        hints: ['Two nodes share an address, or BERTH_DAEMON_PUBLIC_URL points at the wrong machine.'],
      };
    }
    return { ok: true, health: body };
  }
  if (r.aborted) {
    return {
      ok: false, problem: 'timeout',
      message: `Nothing answered at ${u.origin} within ${HEALTH_TIMEOUT_MS / 1000} s.`,
      hints: [`A firewall may drop connections to port ${u.port || (u.protocol === 'https:' ? 443 : 80)}, or the node is down.`],
    };
  }
  // The request failed without an answer we may read. If an opaque
  // request gets through, the daemon is there and CORS is the problem.
  const opaque = await timed(health, { mode: 'no-cors' });
  if (opaque.resp) {
    return {
      ok: false, problem: 'cors',
      message: `The daemon at ${u.origin} is up but does not allow requests from this panel (${location.origin}): CORS.`,
      hints: [`Set BERTH_DAEMON_PANEL_ORIGIN=${location.origin} on the node and restart berth-daemon.`],
    };
  }
  const hints = [];
  if (!/^[\d.]+$/.test(u.hostname) && !u.hostname.includes(':'))
    hints.push(`DNS: does “${u.hostname}” resolve from your computer?`);
  hints.push(`Port: is berth-daemon listening on ${u.port || (u.protocol === 'https:' ? 443 : 80)} and is it open (BERTH_DAEMON_ADDR)?`);
  if (u.protocol === 'https:')
    hints.push(`TLS: open ${health} in a new tab; a certificate warning means the browser does not trust the daemon's certificate.`);
  return {
    ok: false, problem: 'unreachable',
    message: `The browser could not connect to the daemon at ${u.origin}.`,
    hints,
  };
}

// Renders a diagnosis as a block of text nodes (for an element with class
// "diagnosis").
export function diagnosisNodes(d, h) {
  return [
    h('p', null, h('strong', { text: d.message })),
    d.hints && d.hints.length ? h('ul', null, d.hints.map((x) => h('li', { text: x }))) : null,
  ];
}

// ------------------------------------------------------------ files


// A site's files on its daemon (/sites/<site>/files/<op>). Browsing uses
// one files token until it nears its end; every transfer (read, download,
// write, upload) gets a token of its own, because the daemon spends a
// token on its first transfer. Failures are ApiError; a daemon that cannot
// be reached gives an ApiError with code "EUNREACH" and the diagnosis in
// .diagnosis.
export class SiteFiles {
  constructor(siteId, nodeId) {
    this.siteId = siteId;
    this.nodeId = nodeId;
    this.browse = null; // {token, url, exp}
  }

  async token(fresh) {
    if (!fresh && this.browse && this.browse.exp - Date.now() / 1000 > 60) return this.browse;
    const t = await directToken(this.siteId, 'files');
    const tok = { token: t.token, url: t.url, exp: Number(claimsOf(t.token).exp) || 0 };
    if (!fresh) this.browse = tok;
    return tok;
  }

  url(tok, op, params) {
    const qs = Object.entries(params || {})
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
    return `${baseOf(tok.url)}/sites/${encodeURIComponent(this.siteId)}/files/${op}${qs ? `?${qs}` : ''}`;
  }

  async unreachable(tok) {
    const d = await diagnose(tok.url, this.nodeId);
    const e = new ApiError(0, 'EUNREACH', d.ok ? 'The daemon did not answer the request.' : d.message);
    e.diagnosis = d;
    return e;
  }

  // Sends op and returns the response (ok) or throws.
  async send(op, { method = 'GET', params, json, body, fresh = false, contentType } = {}) {
    for (let attempt = 0; ; attempt++) {
      const tok = await this.token(fresh);
      const headers = { Authorization: `Bearer ${tok.token}` };
      let payload = body;
      if (json !== undefined) {
        headers['Content-Type'] = 'application/json';
        payload = JSON.stringify(json);
      } else if (contentType) {
        headers['Content-Type'] = contentType;
      }
      let resp;
      try {
        resp = await fetch(this.url(tok, op, params), { method, headers, body: payload, cache: 'no-store', credentials: 'omit' });
      } catch (e) {
        throw await this.unreachable(tok);
      }
      if (resp.ok) return resp;
      let j = null;
      try { j = await resp.json(); } catch (e) { j = null; }
      const err = (j && j.error) || {};
      // A browsing token that ran out between our check and its use.
      if (resp.status === 401 && !fresh && attempt === 0) {
        this.browse = null;
        continue;
      }
      throw new ApiError(resp.status, err.code || `HTTP${resp.status}`, err.message || (j && j.message) || `${op}: HTTP ${resp.status}`);
    }
  }

  async json(op, opts) {
    const r = await this.send(op, opts);
    return r.json();
  }

  list(path) { return this.json('list', { params: { path } }); }
  stat(path) { return this.json('stat', { params: { path } }); }
  create(path) { return this.json('create', { method: 'POST', json: { path } }); }
  mkdir(path) { return this.json('mkdir', { method: 'POST', json: { path } }); }
  rename(from, to) { return this.json('rename', { method: 'POST', json: { from, to } }); }
  copy(from, to) { return this.json('copy', { method: 'POST', json: { from, to } }); }
  remove(path, recursive) { return this.json('delete', { method: 'POST', json: { path, recursive: !!recursive } }); }
  chmod(path, mode) { return this.json('chmod', { method: 'POST', json: { path, mode } }); }
  compress(root, paths, to) { return this.json('compress', { method: 'POST', json: { root, paths, to } }); }
  extract(path, to) { return this.json('extract', { method: 'POST', json: { path, to } }); }

  // The file's bytes (a transfer: its own token).
  async read(path) {
    const r = await this.send('read', { params: { path }, fresh: true });
    return new Uint8Array(await r.arrayBuffer());
  }

  // Replaces path with data (string or bytes).
  write(path, data) {
    return this.send('write', { method: 'PUT', params: { path }, body: data, fresh: true, contentType: 'application/octet-stream' })
      .then((r) => r.json());
  }

  // A URL that downloads path once (the token is in it and is spent by
  // the download).
  async downloadUrl(path) {
    const tok = await this.token(true);
    return this.url(tok, 'download', { path, token: tok.token });
  }

  // Uploads file (a File) to path with XMLHttpRequest, for its progress
  // events: onProgress(sentBytes, totalBytes). Returns {promise, abort}.
  upload(path, file, onProgress) {
    let xhr = null;
    let aborted = false;
    const promise = (async () => {
      const tok = await this.token(true);
      if (aborted) throw new ApiError(0, 'ECANCELED', 'Upload cancelled.');
      return new Promise((resolve, reject) => {
        xhr = new XMLHttpRequest();
        xhr.open('PUT', this.url(tok, 'upload', { path }));
        xhr.setRequestHeader('Authorization', `Bearer ${tok.token}`);
        xhr.setRequestHeader('Content-Type', 'application/octet-stream');
        xhr.upload.onprogress = (ev) => onProgress && onProgress(ev.loaded, ev.lengthComputable ? ev.total : file.size);
        xhr.onload = () => {
          let j = null;
          try { j = JSON.parse(xhr.responseText); } catch (e) { j = null; }
          if (xhr.status >= 200 && xhr.status < 300) { resolve(j); return; }
          const err = (j && j.error) || {};
          reject(new ApiError(xhr.status, err.code || `HTTP${xhr.status}`, err.message || `upload: HTTP ${xhr.status}`));
        };
        xhr.onerror = async () => reject(await this.unreachable(tok));
        xhr.onabort = () => reject(new ApiError(0, 'ECANCELED', 'Upload cancelled; the file was not changed.'));
        xhr.send(file);
      });
    })();
    return { promise, abort: () => { aborted = true; if (xhr) xhr.abort(); } };
  }
}

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
//   CORS             the daemon answers (a no-cors request succeeds) but
//                    refuses this origin: its panel URL setting is wrong
//   unreachable      nothing answered at all: a DNS name that does not
//                    resolve, a closed port, or (https) a certificate the
//                    browser does not trust; the three look alike from a
//                    page, so the message names them with how to check
//   wrong node       /health answers for another node id
//   unhealthy        /health answered but not ok

import { post } from './api.js';

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
      hints: [`Set the daemon's panel URL (BERTH_DAEMON_PANEL_URL) to exactly ${location.origin} and restart it.`],
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

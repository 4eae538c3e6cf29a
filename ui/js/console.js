// console.js - a site's console: xterm.js (Debian's node-xterm, loaded by
// cjs.js) connected straight to the node's daemon over its websocket
// /sites/<site>/console (docs/internals/direct.md), with a console token
// from the panel.
//
// The daemon sends the replay ring, then live output; keystrokes typed in
// the terminal go as "input" messages, and the line box under it sends a
// whole "line" (the accessible way to type a command). When the daemon
// warns that the token is about to expire, a fresh one is fetched and sent
// on the same socket. A socket that closes is reopened with a growing
// delay; when the daemon cannot be reached, diagnose() explains why
// instead of a spinner.

import { h, messageOf } from './dom.js';
import { directToken, diagnose, diagnosisNodes, baseOf } from './daemon.js';
import { loadCommonJS } from './cjs.js';

let xtermLoad = null;

// Loads xterm.js and its fit addon once; resolves to the Terminal class.
function loadXterm() {
  if (!xtermLoad) {
    if (!document.querySelector('link[data-xterm]')) {
      document.head.append(h('link', { rel: 'stylesheet', href: '/vendor/xterm/xterm.css', 'data-xterm': '' }));
    }
    xtermLoad = Promise.all([
      loadCommonJS('/vendor/xterm', 'xterm.js'),
      loadCommonJS('/vendor/xterm', 'addons/fit/fit.js'),
    ]).then(([Terminal, fit]) => {
      Terminal.applyAddon(fit);
      return Terminal;
    }).catch((e) => {
      xtermLoad = null;
      throw new Error(`xterm.js could not be loaded from /vendor/xterm (is node-xterm installed?): ${e.message}`);
    });
  }
  return xtermLoad;
}

function wsUrl(base, siteId, token) {
  const u = new URL(`${baseOf(base)}/sites/${encodeURIComponent(siteId)}/console`);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.searchParams.set('token', token);
  return u.toString();
}

// Puts the console into card (after its heading) for site; stops when the
// page is left (ctx.onLeave).
export async function mountConsole(card, site, ctx) {
  const status = h('div', { id: 'console-status', role: 'status', class: 'muted', text: 'Loading the terminal…' });
  const screen = h('div', { class: 'console', id: 'console', 'aria-label': `Console of ${site.name}` });
  const line = h('input', { type: 'text', id: 'console-line', name: 'line', autocomplete: 'off', spellcheck: 'false', disabled: true, placeholder: 'A command, then Enter' });
  const send = h('button', { type: 'submit', id: 'console-send', disabled: true, text: 'Send' });
  const lineForm = h('form', { class: 'console-bar', 'aria-label': 'Send a line to the console' },
    h('label', { for: line.id, text: 'Command' }), line, send);
  const reconnect = h('button', { type: 'button', id: 'console-reconnect', hidden: true, text: 'Reconnect' });
  card.append(status, screen, lineForm, h('div', { class: 'actions' }, reconnect));

  let Terminal;
  try {
    Terminal = await loadXterm();
  } catch (e) {
    status.textContent = messageOf(e);
    status.className = 'diagnosis';
    return;
  }
  if (!ctx.alive()) return;

  const term = new Terminal({
    convertEol: true,
    rendererType: 'dom',
    scrollback: 5000,
    fontSize: 13,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
    theme: { background: '#000000', foreground: '#e6e6e6' },
  });
  term.open(screen);
  const fit = () => { try { term.fit(); } catch (e) { /* not laid out yet */ } };
  fit();
  window.addEventListener('resize', fit);

  let ws = null;
  let closing = false;
  let delay = 1000;
  let timer = 0;
  let canWrite = false;

  function setStatus(text, cls) {
    status.className = cls || 'muted';
    status.textContent = text;
  }

  function setWritable(on) {
    canWrite = on;
    line.disabled = !on;
    send.disabled = !on;
    line.placeholder = on ? 'A command, then Enter' : 'Read only: typing needs site.console.write';
  }

  function sendMsg(m) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m));
  }

  // A site without a TTY (every site the API creates) has no line
  // discipline: nothing echoes what is typed and Enter must become a
  // newline. The terminal then edits the line locally (echo, Backspace)
  // and sends it whole on Enter; with a TTY, keystrokes go as they are.
  const tty = !!(site.spec && site.spec.tty);
  let pending = '';
  term.on('data', (data) => {
    if (!canWrite) return;
    if (tty) {
      sendMsg({ type: 'input', data });
      return;
    }
    if (data.startsWith('\x1b')) return; // arrows and function keys
    for (const ch of data) {
      if (ch === '\r' || ch === '\n') {
        term.write('\r\n');
        sendMsg({ type: 'line', data: pending });
        pending = '';
      } else if (ch === '\x7f' || ch === '\b') {
        if (pending) {
          pending = pending.slice(0, -1);
          term.write('\b \b');
        }
      } else if (ch === '\x03') {
        pending = '';
        term.write('^C\r\n');
      } else if (ch >= ' ') {
        pending += ch;
        term.write(ch);
      }
    }
  });
  lineForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (!canWrite) return;
    sendMsg({ type: 'line', data: line.value });
    line.value = '';
  });

  async function renew() {
    try {
      const t = await directToken(site.id, 'console');
      sendMsg({ type: 'auth', token: t.token });
    } catch (e) {
      setStatus(`The console token could not be renewed: ${messageOf(e)}`, 'diagnosis');
    }
  }

  function onMessage(text) {
    let m;
    try { m = JSON.parse(text); } catch (e) { return; }
    switch (m.type) {
      case 'ready':
        delay = 1000;
        setWritable((m.perms || []).includes('site.console.write'));
        setStatus(`Connected to ${site.node.name}.`);
        reconnect.hidden = true;
        term.reset();
        break;
      case 'replay':
      case 'output':
        term.write(m.data || '');
        break;
      case 'token.expiring':
        renew();
        break;
      case 'auth.ok':
        setWritable((m.perms || []).includes('site.console.write'));
        break;
      case 'dropped':
        term.write(`\r\n[berth] ${m.bytes} bytes of output were skipped: this browser was too slow.\r\n`);
        break;
      case 'error':
        setStatus(`Console: ${m.message || m.code}`, m.code === 'EAUTH' ? 'diagnosis' : 'muted');
        break;
      default:
        break; // site.status, site.stats: the page has them from the panel
    }
  }

  async function connect() {
    clearTimeout(timer);
    if (status.className !== 'diagnosis') {
      reconnect.hidden = true;
      setStatus('Connecting…');
    }
    let tok;
    try {
      tok = await directToken(site.id, 'console');
    } catch (e) {
      setStatus(`No console: ${messageOf(e)}`, 'diagnosis');
      reconnect.hidden = false;
      return;
    }
    if (!ctx.alive() || closing) return;
    let opened = false;
    const sock = new WebSocket(wsUrl(tok.url, site.id, tok.token));
    ws = sock;
    sock.onopen = () => { opened = true; };
    sock.onmessage = (ev) => onMessage(ev.data);
    sock.onclose = async (ev) => {
      if (ws !== sock) return;
      ws = null;
      setWritable(false);
      if (closing || !ctx.alive()) return;
      if (!opened) {
        // The browser tells us nothing about why: ask /health.
        const d = await diagnose(tok.url, site.nodeId);
        if (!ctx.alive()) return;
        if (!d.ok) {
          // Explain, and keep trying quietly: the node may come back.
          status.className = 'diagnosis';
          status.replaceChildren(...diagnosisNodes(d, h).filter(Boolean),
            h('p', { class: 'muted', text: `Trying again in ${Math.round(delay / 1000)} s.` }));
          reconnect.hidden = false;
          timer = setTimeout(connect, delay);
          delay = Math.min(delay * 2, 30000);
          return;
        }
      }
      const why = ev.reason ? `: ${ev.reason}` : '';
      setStatus(`Disconnected${why}. Reconnecting in ${Math.round(delay / 1000)} s…`);
      reconnect.hidden = false;
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  reconnect.addEventListener('click', () => { delay = 1000; connect(); });
  ctx.onLeave(() => {
    closing = true;
    clearTimeout(timer);
    window.removeEventListener('resize', fit);
    if (ws) ws.close(1000);
    term.destroy();
  });
  connect();
}

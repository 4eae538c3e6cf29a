// live.js - the panel's live updates over /ws (docs/internals/events.md):
// site status and stats, node online state and stats, pushed as they
// happen. One socket per tab, opened with the access token on the URL and
// subscribed to every topic; it reconnects with a growing delay (1 s to
// 15 s) and a fresh token. Pages listen with live.on(type, fn); "resync"
// fires after a reconnect or a "dropped" notice, when what a page shows
// may have missed events and should be fetched again.

import { freshToken, refresh } from './api.js';

const TOPICS = ['site.status', 'site.stats', 'node'];
const PING_MS = 25000;

class Live extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.state = 'off';
    this.want = false;
    this.delay = 1000;
    this.timer = 0;
    this.pinger = 0;
    this.everReady = false;
  }

  setState(s, why) {
    this.state = s;
    this.why = why || '';
    this.dispatchEvent(new CustomEvent('state', { detail: { state: s, why } }));
  }

  on(type, fn) {
    const l = (ev) => fn(ev.detail);
    this.addEventListener(type, l);
    return () => this.removeEventListener(type, l);
  }

  start() {
    this.want = true;
    if (!this.ws) this.connect();
  }

  stop() {
    this.want = false;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.setState('off', 'logged out');
  }

  async connect() {
    clearTimeout(this.timer);
    if (!this.want) return;
    this.setState('connecting');
    let token;
    try {
      token = await freshToken();
    } catch (e) {
      this.setState('off', e.message);
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws?token=${encodeURIComponent(token)}`);
    this.ws = ws;
    ws.onmessage = (ev) => this.message(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pinger);
      if (!this.want) return;
      this.setState('connecting', ev.reason || 'connection lost');
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 15000);
    };
  }

  message(text) {
    let m;
    try { m = JSON.parse(text); } catch (e) { return; }
    switch (m.type) {
      case 'ready':
        this.ws.send(JSON.stringify({ type: 'subscribe', topics: TOPICS }));
        break;
      case 'subscribed':
        this.delay = 1000;
        this.setState('live');
        clearInterval(this.pinger);
        this.pinger = setInterval(() => {
          if (this.ws && this.ws.readyState === WebSocket.OPEN)
            this.ws.send('{"type":"ping"}');
        }, PING_MS);
        if (this.everReady) this.dispatchEvent(new CustomEvent('resync', { detail: {} }));
        this.everReady = true;
        break;
      case 'error':
        if (m.code === 'EAUTH') refresh().catch(() => {});
        this.dispatchEvent(new CustomEvent('error', { detail: m }));
        break;
      case 'dropped':
        this.dispatchEvent(new CustomEvent('resync', { detail: m }));
        break;
      case 'pong':
        break;
      default:
        this.dispatchEvent(new CustomEvent(m.type, { detail: m }));
    }
  }
}

export const live = new Live();

// "SITE_STATE_RUNNING" (proto3 JSON of the bus) -> "running", the word the
// HTTP API uses.
export function stateWord(s) {
  if (!s) return 'unknown';
  return String(s).replace(/^SITE_STATE_/, '').toLowerCase();
}

// proto3 JSON writes 64-bit integers as strings and leaves out zeros.
export const num = (v) => Number(v || 0);

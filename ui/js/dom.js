// dom.js - building the page: elements, labelled form fields, forms that
// report their errors, the message area, confirmation dialogs, and the
// formatting of sizes, percentages and times.

let uid = 0;

// Creates an element. props: class, text, html is not supported on
// purpose (everything is text); on<event> functions become listeners;
// dataset: an object; any other key becomes an attribute (false/null
// leaves it out, true sets it empty). children: nodes, strings, arrays,
// null (skipped).
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function')
      el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function newId(prefix) {
  uid += 1;
  return `${prefix || 'f'}-${uid}`;
}

// A labelled field: <div class=field><label for>…</label>input<hint></div>.
// The input gets an id (kept when it has one) and aria-describedby for
// the hint.
export function field(label, input, hint) {
  if (!input.id) input.id = newId('f');
  const box = h('div', { class: 'field' }, h('label', { for: input.id, text: label }), input);
  if (hint) {
    const hid = `${input.id}-hint`;
    box.append(h('span', { class: 'hint', id: hid, text: hint }));
    input.setAttribute('aria-describedby', hid);
  }
  return box;
}

// A form whose submit (button or Enter) runs onSubmit(form). While it runs
// the submit buttons are disabled; an exception is shown in the form's
// error line (role=alert) and focus goes back to the first field named in
// it, else stays. Returns the form; append fields into form.body.
export function form(props, onSubmit) {
  const err = h('p', { class: 'form-error', role: 'alert' });
  const f = h('form', Object.assign({ novalidate: false }, props || {}), err);
  f.errorLine = err;
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (f.busy) return;
    f.busy = true;
    err.textContent = '';
    const buttons = f.querySelectorAll('button[type=submit]');
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await onSubmit(f);
    } catch (e) {
      err.textContent = messageOf(e);
    } finally {
      f.busy = false;
      buttons.forEach((b) => { b.disabled = false; });
    }
  });
  return f;
}

export function messageOf(e) {
  if (!e) return 'Unknown error';
  if (typeof e === 'string') return e;
  return e.message || String(e);
}

// ------------------------------------------------------------ messages

const area = () => document.getElementById('messages');

// Shows a message at the top of the page. kind: 'error' (stays until
// dismissed, role=alert), 'info' or 'ok' (gone after 6 s). Returns a
// function that removes it.
export function notify(kind, text) {
  const box = area();
  const dismiss = () => m.remove();
  const m = h('div', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('p', { text }),
    h('button', { type: 'button', 'aria-label': 'Dismiss', onclick: dismiss, text: '×' }));
  // Identical errors are not stacked.
  for (const old of box.querySelectorAll('.message')) {
    if (old.textContent === m.textContent) old.remove();
  }
  box.append(m);
  // Passing news is kept short: at most three at a time.
  const passing = [...box.querySelectorAll('.message:not(.error)')];
  passing.slice(0, Math.max(0, passing.length - 3)).forEach((x) => x.remove());
  if (kind !== 'error') setTimeout(dismiss, 6000);
  return dismiss;
}

export const showError = (e) => notify('error', messageOf(e));
export const showInfo = (text) => notify('info', text);
export const showOk = (text) => notify('ok', text);

export function clearMessages() {
  clear(area());
}

// ------------------------------------------------------------ dialogs

// Asks a yes/no question in a modal dialog (Escape cancels; focus starts
// on Cancel for destructive actions). Resolves to true or false. extra: a
// node shown under the text (a checkbox); its state is read by the caller.
export function confirmDialog(text, okLabel, extra, danger = true) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: danger ? 'danger' : 'primary', text: okLabel || 'OK' });
    const cancel = h('button', { type: 'button', text: 'Cancel' });
    const d = h('dialog', { 'aria-label': text },
      h('p', { text }), extra || null,
      h('div', { class: 'actions' }, ok, cancel));
    const done = (v) => { d.close(); d.remove(); resolve(v); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    d.addEventListener('cancel', (ev) => { ev.preventDefault(); done(false); });
    document.body.append(d);
    d.showModal();
    (danger ? cancel : ok).focus();
  });
}

// ------------------------------------------------------------ formats

export function bytes(n) {
  n = Number(n) || 0;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function percent(n) {
  n = Number(n) || 0;
  return `${n >= 10 ? Math.round(n) : n.toFixed(1)}%`;
}

export function when(s) {
  if (!s) return '—';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return d.toLocaleString();
}

export function ago(s) {
  if (!s) return 'never';
  const t = new Date(s).getTime();
  if (Number.isNaN(t)) return s;
  const sec = Math.round((Date.now() - t) / 1000);
  if (sec < 5) return 'just now';
  if (sec < 60) return `${sec} s ago`;
  if (sec < 3600) return `${Math.round(sec / 60)} min ago`;
  if (sec < 86400) return `${Math.round(sec / 3600)} h ago`;
  return new Date(s).toLocaleDateString();
}

// A table with a header row; rows are arrays of cells (nodes or text) or
// <tr> elements. empty: the text shown when there are no rows.
export function table(headers, rows, empty, props) {
  const head = h('tr', null, headers.map((x) => {
    const [label, cls] = Array.isArray(x) ? x : [x, null];
    return h('th', { scope: 'col', class: cls, text: label });
  }));
  const body = h('tbody');
  fillRows(body, headers.length, rows, empty);
  const t = h('table', props || null, h('thead', null, head), body);
  return h('div', { class: 'table-wrap' }, t);
}

export function fillRows(tbody, ncols, rows, empty) {
  clear(tbody);
  if (!rows.length) {
    tbody.append(h('tr', null, h('td', { colspan: ncols, class: 'empty', text: empty || 'Nothing here yet.' })));
    return;
  }
  for (const r of rows) {
    tbody.append(r instanceof HTMLElement ? r : h('tr', null, r.map((c) => h('td', null, c))));
  }
}

// Asks for one line of text in a modal dialog (Enter accepts, Escape
// cancels). Resolves to the text, or null when cancelled.
export function promptDialog(text, label, value, okLabel) {
  return new Promise((resolve) => {
    const input = h('input', { type: 'text', id: newId('prompt'), value: value || '', spellcheck: 'false', autocomplete: 'off' });
    const f = h('form', { method: 'dialog' },
      h('p', { text }),
      field(label, input),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary', value: 'ok', text: okLabel || 'OK' }),
        h('button', { type: 'button', value: 'cancel', text: 'Cancel' })));
    const d = h('dialog', { 'aria-label': text }, f);
    let result = null;
    f.addEventListener('submit', (ev) => {
      ev.preventDefault();
      result = input.value;
      d.close();
    });
    f.querySelector('button[value=cancel]').addEventListener('click', () => d.close());
    d.addEventListener('close', () => { d.remove(); resolve(result); });
    document.body.append(d);
    d.showModal();
    input.focus();
    // Select the name without its extension, as file managers do.
    const dot = input.value.lastIndexOf('.');
    input.setSelectionRange(0, dot > 0 ? dot : input.value.length);
  });
}

// files.js - a site's file manager, talking straight to the node's daemon
// (docs/internals/direct.md): browse, edit text files, upload with a
// progress bar, download, rename, delete, new files and folders, and
// .tar.gz archives (compress the selection, extract one).
//
// The directory shown is in the URL (#/sites/<id>/files?path=/www); the
// editor too (&edit=/www/index.html), so both survive a reload and the
// browser's Back button works.

import { get } from '../api.js';
import { h, table, fillRows, bytes, when, showError, showOk, confirmDialog, promptDialog, messageOf } from '../dom.js';
import { SiteFiles, diagnosisNodes } from '../daemon.js';
import { pageBar } from '../widgets.js';

const EDIT_MAX = 5 * 1024 * 1024;

function join(dir, name) {
  return `${dir.replace(/\/+$/, '')}/${name}`;
}

function parent(path) {
  const p = path.replace(/\/+$/, '');
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function baseName(path) {
  return path.replace(/\/+$/, '').split('/').pop();
}

function normal(path) {
  const p = `/${(path || '').split('/').filter((x) => x && x !== '.').join('/')}`;
  return p;
}

const isArchive = (name) => /\.(tar\.gz|tgz)$/i.test(name);

// Shows a failure: a diagnosis block when the daemon cannot be reached,
// the daemon's message otherwise.
function failure(box, e) {
  if (e.diagnosis && !e.diagnosis.ok) {
    box.replaceChildren(h('div', { class: 'diagnosis', role: 'alert' }, ...diagnosisNodes(e.diagnosis, h).filter(Boolean)));
  } else {
    showError(e);
  }
}

export async function render(view, ctx) {
  const site = await get(`/sites/${encodeURIComponent(ctx.params.id)}`);
  if (!ctx.alive()) return;
  const files = new SiteFiles(site.id, site.nodeId);
  const dir = normal(ctx.query.get('path') || '/');
  const edit = ctx.query.get('edit');
  const here = (path, extra) => `/sites/${site.id}/files?path=${encodeURIComponent(path)}${extra || ''}`;

  view.append(pageBar(`Files of ${site.name}`,
    h('a', { class: 'button', href: `#/sites/${site.id}`, text: 'Back to the site' })));
  const problem = h('div', { id: 'files-problem' });
  view.append(problem);

  if (edit) {
    await editor(view, ctx, files, normal(edit), problem, here);
    return;
  }

  // ---------------------------------------------------------- path
  const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Folder', id: 'crumbs' });
  const parts = dir.split('/').filter(Boolean);
  crumbs.append(h('a', { href: `#${here('/')}`, text: '/ (site root)' }));
  parts.forEach((p, i) => {
    const path = `/${parts.slice(0, i + 1).join('/')}`;
    crumbs.append(' / ', i === parts.length - 1
      ? h('span', { 'aria-current': 'location', text: p })
      : h('a', { href: `#${here(path)}`, text: p }));
  });

  // ---------------------------------------------------------- toolbar
  const uploadInput = h('input', { type: 'file', id: 'upload-input', multiple: true, class: 'visually-hidden' });
  const uploads = h('div', { id: 'uploads', 'aria-live': 'polite' });
  const selectAll = h('input', { type: 'checkbox', id: 'select-all', 'aria-label': 'Select all' });
  const tools = h('div', { class: 'actions', role: 'toolbar', 'aria-label': 'File actions' },
    dir !== '/' ? h('a', { class: 'button', href: `#${here(parent(dir))}`, id: 'files-up', text: 'Up' }) : null,
    h('button', { type: 'button', id: 'files-refresh', text: 'Refresh', onclick: () => load() }),
    h('button', { type: 'button', id: 'files-new-folder', text: 'New folder', onclick: () => newEntry(true) }),
    h('button', { type: 'button', id: 'files-new-file', text: 'New file', onclick: () => newEntry(false) }),
    uploadInput, h('label', { for: uploadInput.id, class: 'button', id: 'upload-label', text: 'Upload files' }),
    h('button', { type: 'button', id: 'files-compress', text: 'Compress selected', onclick: () => compress() }),
    h('button', { type: 'button', id: 'files-delete', class: 'danger', text: 'Delete selected', onclick: () => removeSelected() }));
  view.append(h('div', { class: 'card' }, crumbs, h('div', { style: 'margin-top:.75rem' }, tools), uploads));

  // ---------------------------------------------------------- listing
  const body = h('tbody');
  const listCard = h('div', { class: 'card' },
    table([['', 'sel'], 'Name', ['Size', 'num'], ['Mode', 'hide-narrow'], ['Modified', 'hide-narrow'], 'Actions'], [], '',
      { id: 'files-table', 'aria-label': `Files in ${dir}` }));
  listCard.querySelector('thead th').append(selectAll);
  listCard.querySelector('tbody').replaceWith(body);
  view.append(listCard);
  let entries = [];

  function selected() {
    return [...body.querySelectorAll('input[name=sel]:checked')].map((c) => c.value);
  }

  selectAll.addEventListener('change', () => {
    body.querySelectorAll('input[name=sel]').forEach((c) => { c.checked = selectAll.checked; });
  });

  function row(e) {
    const path = e.path || join(dir, e.name);
    const name = e.type === 'dir'
      ? h('a', { href: `#${here(path)}`, class: 'entry-dir', text: `${e.name}/` })
      : e.type === 'file'
        ? h('a', { href: `#${here(dir, `&edit=${encodeURIComponent(path)}`)}`, class: 'entry-file', text: e.name, title: 'Open in the editor' })
        : h('span', { text: `${e.name}${e.type === 'link' ? ' →' : ''}` });
    const btn = (label, fn, cls) => h('button', { type: 'button', class: `small ${cls || ''}`, 'data-act': label.toLowerCase(), 'aria-label': `${label} ${e.name}`, text: label, onclick: fn });
    return h('tr', { 'data-name': e.name, 'data-type': e.type },
      h('td', null, h('input', { type: 'checkbox', name: 'sel', value: e.name, 'aria-label': `Select ${e.name}` })),
      h('td', { class: 'mono' }, name),
      h('td', { class: 'num', text: e.type === 'dir' ? '—' : bytes(e.size) }),
      h('td', { class: 'mono hide-narrow', text: e.mode || '' }),
      h('td', { class: 'hide-narrow nowrap', text: e.mtime ? when(new Date(e.mtime).toISOString()) : '' }),
      h('td', null, h('div', { class: 'actions' },
        e.type === 'file' ? btn('Download', () => download(path)) : null,
        btn('Rename', () => rename(e)),
        e.type === 'file' && isArchive(e.name) ? btn('Extract', () => extract(path)) : null,
        btn('Delete', () => removeNames([e.name]), 'danger'))));
  }

  async function load() {
    try {
      const r = await files.list(dir);
      if (!ctx.alive()) return;
      problem.replaceChildren();
      entries = r.entries;
      selectAll.checked = false;
      fillRows(body, 6, entries.map(row), 'This folder is empty.');
      if (r.truncated) body.append(h('tr', null, h('td', { colspan: 6, class: 'muted', text: 'The listing was cut: too many entries.' })));
    } catch (e) {
      fillRows(body, 6, [], `The folder could not be listed: ${messageOf(e)}`);
      failure(problem, e);
    }
  }

  // ---------------------------------------------------------- actions
  async function act(fn, ok) {
    try {
      await fn();
      if (ok) showOk(ok);
    } catch (e) {
      failure(problem, e);
    }
    await load();
  }

  async function newEntry(folder) {
    const name = await promptDialog(folder ? 'New folder' : 'New file', 'Name', '', 'Create');
    if (!name) return;
    await act(() => (folder ? files.mkdir(join(dir, name)) : files.create(join(dir, name))), `${name} created.`);
  }

  async function rename(e) {
    const to = await promptDialog(`Rename ${e.name}`, 'New name or path', e.name, 'Rename');
    if (!to || to === e.name) return;
    await act(() => files.rename(join(dir, e.name), to.startsWith('/') ? to : join(dir, to)), `${e.name} renamed.`);
  }

  async function removeNames(names) {
    if (!names.length) { showError('Select files first.'); return; }
    const dirs = names.filter((n) => (entries.find((e) => e.name === n) || {}).type === 'dir');
    const what = names.length === 1 ? names[0] : `${names.length} items`;
    if (!(await confirmDialog(`Delete ${what}?${dirs.length ? ' Folders are deleted with everything in them.' : ''}`, 'Delete'))) return;
    await act(async () => {
      for (const n of names) await files.remove(join(dir, n), dirs.includes(n));
    }, `${what} deleted.`);
  }

  function removeSelected() {
    return removeNames(selected());
  }

  async function compress() {
    const names = selected();
    if (!names.length) { showError('Select what to put in the archive first.'); return; }
    const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
    const name = await promptDialog(`Compress ${names.length === 1 ? names[0] : `${names.length} items`}`, 'Archive name', `archive-${stamp}.tar.gz`, 'Compress');
    if (!name) return;
    await act(async () => {
      const r = await files.compress(dir, names, join(dir, name));
      showOk(`${name}: ${r.entries} entries, ${bytes(r.size)}.`);
    });
  }

  async function extract(path) {
    await act(async () => {
      const r = await files.extract(path, dir);
      showOk(`Extracted ${r.entries} entries (${bytes(r.bytes)})${r.skipped ? `; ${r.skipped} links or special files skipped` : ''}.`);
    });
  }

  async function download(path) {
    try {
      const url = await files.downloadUrl(path);
      const a = h('a', { href: url, download: baseName(path), hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) {
      failure(problem, e);
    }
  }

  // ---------------------------------------------------------- uploads
  const running = new Set();
  uploadInput.addEventListener('change', () => {
    const list = [...uploadInput.files];
    uploadInput.value = '';
    list.forEach(uploadOne);
  });

  function uploadOne(file) {
    const bar = h('progress', { max: file.size || 1, value: 0, 'aria-label': `Upload of ${file.name}` });
    const text = h('span', { class: 'muted', text: `0 of ${bytes(file.size)}` });
    const cancel = h('button', { type: 'button', class: 'small', text: 'Cancel' });
    const rowEl = h('div', { class: 'upload-row', 'data-upload': file.name }, h('span', { class: 'mono', text: file.name }), bar, text, cancel);
    uploads.append(rowEl);
    const job = files.upload(join(dir, file.name), file, (sent, total) => {
      bar.max = total || 1;
      bar.value = sent;
      text.textContent = `${bytes(sent)} of ${bytes(total)}`;
    });
    running.add(job);
    cancel.addEventListener('click', () => job.abort());
    job.promise.then(() => {
      bar.value = bar.max;
      text.textContent = `done, ${bytes(file.size)}`;
      rowEl.dataset.done = '1';
      cancel.remove();
      setTimeout(() => rowEl.remove(), 8000);
      load();
    }).catch((e) => {
      text.textContent = `failed: ${messageOf(e)}`;
      rowEl.dataset.failed = '1';
      cancel.textContent = 'Dismiss';
      cancel.onclick = () => rowEl.remove();
      failure(problem, e);
    }).finally(() => running.delete(job));
  }
  // Leaving the page does not cut uploads short; closing the tab warns.
  const beforeUnload = (ev) => {
    if (running.size) { ev.preventDefault(); ev.returnValue = ''; }
  };
  window.addEventListener('beforeunload', beforeUnload);
  ctx.onLeave(() => window.removeEventListener('beforeunload', beforeUnload));

  await load();
}

// The text editor for one file: loads it (refusing binary and huge files),
// saves with the button or Ctrl+S.
async function editor(view, ctx, files, path, problem, here) {
  const back = `#${here(parent(path))}`;
  const area = h('textarea', { class: 'editor', id: 'editor-text', spellcheck: 'false', 'aria-label': `Content of ${path}` });
  const save = h('button', { type: 'submit', class: 'primary', id: 'editor-save', text: 'Save' });
  const state = h('span', { class: 'muted', id: 'editor-state', role: 'status' });
  const f = h('form', { id: 'editor-form', 'aria-label': `Edit ${path}` },
    h('h2', { class: 'mono', text: path }), area,
    h('div', { class: 'actions', style: 'margin-top:.5rem' }, save, h('a', { class: 'button', href: back, id: 'editor-close', text: 'Close' }), state));
  view.append(h('div', { class: 'card' }, f));
  let st;
  try {
    st = await files.stat(path);
    if (st.size > EDIT_MAX) throw new Error(`${baseName(path)} is ${bytes(st.size)}: too large to edit here. Download it instead.`);
    const data = await files.read(path);
    if (data.includes(0)) throw new Error(`${baseName(path)} is not a text file. Download it instead.`);
    area.value = new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch (e) {
    if (e instanceof TypeError) e = new Error(`${baseName(path)} is not UTF-8 text. Download it instead.`);
    failure(problem, e);
    area.disabled = true;
    save.disabled = true;
    return;
  }
  let dirty = false;
  area.addEventListener('input', () => { dirty = true; state.textContent = 'Unsaved changes'; });
  area.addEventListener('keydown', (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key === 's') { ev.preventDefault(); f.requestSubmit(); }
  });
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    save.disabled = true;
    try {
      await files.write(path, area.value);
      dirty = false;
      state.textContent = `Saved at ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      state.textContent = 'Not saved';
      failure(problem, e);
    } finally {
      save.disabled = false;
    }
  });
  const beforeUnload = (ev) => { if (dirty) { ev.preventDefault(); ev.returnValue = ''; } };
  window.addEventListener('beforeunload', beforeUnload);
  ctx.onLeave(() => window.removeEventListener('beforeunload', beforeUnload));
  area.focus();
}

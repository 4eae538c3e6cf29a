// keys.js - the signed-in user's SSH public keys (for berth-shell): list,
// add, remove.

import { get, post, del } from '../api.js';
import { h, field, form, table, fillRows, when, showOk, showError, confirmDialog } from '../dom.js';
import { pageBar } from '../widgets.js';

export async function render(view, ctx) {
  view.append(pageBar('SSH keys'),
    h('p', { class: 'muted' }, 'Keys that let you log in to your sites over SSH and SFTP as ',
      h('span', { class: 'mono', text: `${ctx.me.user.name}+<site>` }), '.'));
  const body = h('tbody');
  async function load() {
    const r = await get('/user/keys');
    fillRows(body, 4, r.keys.map((k) => h('tr', { 'data-key': k.name || k.fingerprint },
      h('td', { text: k.name || '—' }),
      h('td', { class: 'mono', text: `${k.type} ${k.fingerprint}` }),
      h('td', { class: 'hide-narrow', text: when(k.createdAt) }),
      h('td', null, h('button', {
        type: 'button', class: 'small danger', text: 'Remove', 'aria-label': `Remove key ${k.name || k.fingerprint}`,
        onclick: async () => {
          if (!(await confirmDialog(`Remove the key ${k.name || k.fingerprint}?`, 'Remove'))) return;
          try {
            await del(`/user/keys/${k.id}`);
            showOk('Key removed.');
            await load();
          } catch (e) {
            showError(e);
          }
        },
      })))), 'No keys yet.');
  }
  const name = h('input', { type: 'text', id: 'key-name', name: 'name', placeholder: 'laptop', spellcheck: 'false' });
  const key = h('textarea', { id: 'key-text', name: 'publicKey', rows: 3, required: true, spellcheck: 'false', placeholder: 'ssh-ed25519 AAAA… you@host' });
  // Enter adds the key (a public key is one line); Shift+Enter is a newline.
  key.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) {
      ev.preventDefault();
      f.requestSubmit();
    }
  });
  const f = form({ id: 'key-form', 'aria-label': 'Add a key' }, async () => {
    const text = key.value.trim();
    if (!text) throw new Error('Paste a public key (the content of ~/.ssh/id_ed25519.pub).');
    const r = await post('/user/keys', { name: name.value.trim(), publicKey: text });
    showOk(`Key added: ${r.fingerprint}`);
    name.value = '';
    key.value = '';
    await load();
  });
  f.append(h('h2', { text: 'Add a key' }), field('Name', name), field('Public key', key, 'One line, as in ~/.ssh/id_ed25519.pub.'),
    h('button', { type: 'submit', class: 'primary', id: 'key-add', text: 'Add key' }));
  view.append(h('div', { class: 'card' },
    table(['Name', 'Key', ['Added', 'hide-narrow'], ''], [], '', { id: 'keys-table', 'aria-label': 'SSH keys' })),
  h('div', { class: 'card' }, f));
  view.querySelector('#keys-table tbody').replaceWith(body);
  await load();
}

// console.js - a site's console in xterm.js, connected straight to the
// node's daemon with a console token from the panel.

import { h, messageOf } from './dom.js';
import { directToken, diagnose, diagnosisNodes } from './daemon.js';

export async function mountConsole(card, site, ctx) {
  const status = h('div', { id: 'console-status', role: 'status', class: 'muted', text: 'Connecting…' });
  card.append(status);
  let tok;
  try {
    tok = await directToken(site.id, 'console');
  } catch (e) {
    status.textContent = `No console: ${messageOf(e)}`;
    return;
  }
  if (!ctx.alive()) return;
  const d = await diagnose(tok.url, site.nodeId);
  if (!d.ok) {
    status.className = 'diagnosis';
    status.replaceChildren(...diagnosisNodes(d, h).filter(Boolean));
    return;
  }
  status.textContent = 'The daemon answers, but this panel does not speak its console protocol yet.';
}

// specform.js - the fields of a site's spec (svc-panel/sitespec.h), shared
// by the new-site page and the site page's settings: what the panel takes
// as JSON is typed here as text, one item per line.

import { h, field } from './dom.js';

const MIB = 1024 * 1024;

function lines(text) {
  return text.split('\n').map((s) => s.trim()).filter((s) => s !== '');
}

// Builds the inputs for spec (the API's site.spec plus domains; {} for a
// new site). Returns {node: the fields (a fragment), read(): the API
// body, throwing an Error that names the field on bad input}. update:
// leave out what PATCH does not take.
export function specForm(spec, domains) {
  spec = spec || {};
  const image = h('input', { type: 'text', name: 'image', id: 'site-image', required: true, value: spec.image || '', spellcheck: 'false', placeholder: 'nginx:1.25' });
  const command = h('textarea', { name: 'command', id: 'site-command', rows: 3, spellcheck: 'false' });
  command.value = (spec.command || []).join('\n');
  const env = h('textarea', { name: 'env', id: 'site-env', rows: 3, spellcheck: 'false' });
  env.value = Object.entries(spec.env || {}).map(([k, v]) => `${k}=${v}`).join('\n');
  const dom = h('textarea', { name: 'domains', id: 'site-domains', rows: 2, spellcheck: 'false' });
  dom.value = (domains || []).join('\n');
  const memory = h('input', { type: 'number', name: 'memory', id: 'site-memory', min: 6, step: 1, value: spec.memoryBytes ? Math.round(spec.memoryBytes / MIB) : 256 });
  const cpu = h('input', { type: 'number', name: 'cpu', id: 'site-cpu', min: 10, max: 1024000, step: 10, value: spec.cpuMillis || 1000 });
  const pids = h('input', { type: 'number', name: 'pids', id: 'site-pids', min: 16, max: 1000000, value: spec.pids || 1024 });
  const httpPort = h('input', { type: 'number', name: 'httpPort', id: 'site-http-port', min: 0, max: 65535, value: spec.httpPort || '' });
  const restart = h('select', { name: 'restart', id: 'site-restart' },
    ['on-failure', 'always', 'never'].map((r) => h('option', { value: r, text: r })));
  restart.value = spec.restart || 'on-failure';
  const stop = h('input', { type: 'text', name: 'stopCommand', id: 'site-stop', value: spec.stopCommand || '', spellcheck: 'false' });

  const node = h('div', null,
    field('Image', image, 'A Docker image reference, e.g. nginx:1.25'),
    field('Command', command, 'One argument per line; empty: the image’s own.'),
    h('div', { class: 'fields' },
      field('Memory (MiB)', memory),
      field('CPU (millicores)', cpu, '1000 = one core'),
      field('Processes', pids),
      field('Restart', restart)),
    field('Domains', dom, 'One host name per line.'),
    h('div', { class: 'fields' },
      field('HTTP port in the container', httpPort, 'Where domains route to (default 80).'),
      field('Stop command', stop, 'Typed into the console to stop; empty: a signal.')),
    field('Environment', env, 'NAME=value, one per line.'));

  function read() {
    const body = {};
    if (!image.value.trim()) throw new Error('Image: enter an image, e.g. nginx:1.25.');
    body.image = image.value.trim();
    body.command = command.value.split('\n').filter((s) => s !== '');
    const e = {};
    for (const l of lines(env.value)) {
      const i = l.indexOf('=');
      if (i <= 0) throw new Error(`Environment: “${l}” is not NAME=value.`);
      e[l.slice(0, i)] = l.slice(i + 1);
    }
    body.env = e;
    body.domains = lines(dom.value).map((d) => d.toLowerCase());
    const mem = Number(memory.value);
    if (!Number.isFinite(mem) || mem < 6) throw new Error('Memory: at least 6 MiB.');
    body.memoryBytes = Math.round(mem * MIB);
    body.cpuMillis = Number(cpu.value) || 1000;
    body.pids = Number(pids.value) || 1024;
    if (httpPort.value !== '') body.httpPort = Number(httpPort.value);
    body.restart = restart.value;
    body.stopCommand = stop.value;
    return body;
  }

  return { node, read };
}

// cjs.js - loads a CommonJS package in the browser, without a build step.
//
// Debian's node-xterm installs xterm.js as CommonJS modules
// (/usr/share/nodejs/xterm/lib/*.js, served under /vendor/xterm/) and its
// browser bundle (libjs-xterm) is only a stub that calls require(). This
// loader fetches a module, finds its require("./x") calls, fetches those
// (in parallel, each once), and then evaluates the graph with the usual
// (exports, require, module) wrapper. Only relative requires inside the
// package are supported; anything else throws when required.

const MAX_MODULES = 500;

function resolve(from, spec) {
  const parts = from.split('/').slice(0, -1);
  for (const p of spec.split('/')) {
    if (p === '..') parts.pop();
    else if (p !== '.' && p !== '') parts.push(p);
  }
  let path = parts.join('/');
  if (!/\.(js|json)$/.test(path)) path += '.js';
  return path;
}

// Loads base + "/" + main (e.g. "/vendor/xterm", "xterm.js") and returns
// its module.exports.
export async function loadCommonJS(base, main) {
  const sources = new Map(); // path -> source text
  const failed = new Map(); // path -> the error of its fetch
  const started = new Set();
  const tasks = [];
  const requireRe = /\brequire\(\s*["']([^"']+)["']\s*\)/g;

  // Modules require each other in cycles, so nothing waits for its
  // dependencies here: each fetch only starts the ones it finds, and the
  // caller waits until no fetch is left.
  async function fetchOne(path) {
    try {
      const resp = await fetch(`${base}/${path}`);
      if (!resp.ok) throw new Error(`${base}/${path}: HTTP ${resp.status}`);
      const text = await resp.text();
      sources.set(path, text);
      // A require() in a comment may name nothing: its failure only
      // matters if it is really required.
      for (const m of text.matchAll(requireRe)) {
        if (m[1].startsWith('.')) start(resolve(path, m[1]));
      }
    } catch (e) {
      failed.set(path, e);
    }
  }

  function start(path) {
    if (started.has(path)) return;
    if (started.size >= MAX_MODULES) {
      failed.set(path, new Error(`${base}: more than ${MAX_MODULES} modules`));
      return;
    }
    started.add(path);
    tasks.push(fetchOne(path));
  }

  start(main);
  for (let i = 0; i < tasks.length; i++) await tasks[i];
  if (failed.has(main)) throw failed.get(main);

  const cache = new Map();
  function load(path) {
    if (cache.has(path)) return cache.get(path).exports;
    const text = sources.get(path);
    if (text === undefined) throw failed.get(path) || new Error(`${base}/${path} was not loaded`);
    const module = { exports: {} };
    cache.set(path, module);
    if (path.endsWith('.json')) {
      module.exports = JSON.parse(text);
      return module.exports;
    }
    const fn = new Function('exports', 'require', 'module', `${text}\n//# sourceURL=${location.origin}${base}/${path}`);
    const req = (spec) => {
      if (!spec.startsWith('.')) throw new Error(`${path}: cannot require "${spec}" in the browser`);
      return load(resolve(path, spec));
    };
    fn.call(module.exports, module.exports, req, module);
    return module.exports;
  }
  return load(main);
}

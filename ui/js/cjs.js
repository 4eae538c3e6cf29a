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
  const pending = new Map(); // path -> promise
  const failed = new Map(); // path -> the error of its fetch
  const requireRe = /\brequire\(\s*["']([^"']+)["']\s*\)/g;

  function fetchOne(path) {
    if (pending.has(path)) return pending.get(path);
    if (pending.size >= MAX_MODULES) throw new Error(`${base}: more than ${MAX_MODULES} modules`);
    const p = (async () => {
      const resp = await fetch(`${base}/${path}`);
      if (!resp.ok) throw new Error(`${base}/${path}: HTTP ${resp.status}`);
      const text = await resp.text();
      sources.set(path, text);
      const deps = [];
      for (const m of text.matchAll(requireRe)) {
        // A require() in a comment may name nothing: its failure only
        // matters if it is really required.
        if (m[1].startsWith('.')) deps.push(fetchOne(resolve(path, m[1])).catch((e) => failed.set(resolve(path, m[1]), e)));
      }
      await Promise.all(deps);
    })();
    pending.set(path, p);
    return p;
  }

  await fetchOne(main);

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

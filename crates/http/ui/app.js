// The stream browser: a hash router over a handful of views.

import { h, replace, route } from './dom.js';
import { getApiKey, promptForApiKey, setApiKey } from './api.js';
import { errorNotice } from './common.js';
import * as types from './types.js';
import * as streams from './streams.js';
import * as events from './events.js';
import * as feed from './feed.js';
import * as appendView from './append.js';
import * as status from './status.js';

const routes = [
  { match: [], view: types, nav: 'types' },
  { match: ['types', ':type'], view: streams, nav: 'types' },
  { match: ['streams', ':type', ':id'], view: events, nav: 'types' },
  { match: ['feed'], view: feed, nav: 'feed' },
  { match: ['feed', ':type'], view: feed, nav: 'feed' },
  { match: ['append'], view: appendView, nav: 'append' },
  { match: ['status'], view: status, nav: 'status' },
];

/** Splits `#/a/b?x=1` into decoded segments and query parameters. */
function parseHash(hash) {
  const raw = hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1));
  const segments = path.split('/').filter((s) => s !== '').map((s) => {
    try { return decodeURIComponent(s); } catch { return s; }
  });
  return { segments, query };
}

function resolve(segments) {
  for (const r of routes) {
    if (r.match.length !== segments.length) continue;
    const params = {};
    let ok = true;
    r.match.forEach((m, i) => {
      if (m.startsWith(':')) params[m.slice(1)] = segments[i];
      else if (m !== segments[i]) ok = false;
    });
    if (ok) return { ...r, params };
  }
  return null;
}

const main = document.getElementById('main');
let current = null;
let firstRender = true;

async function render() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const { segments, query } = parseHash(location.hash);
  const found = resolve(segments);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (found && a.dataset.nav === found.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  replace(main);
  if (!firstRender) main.focus({ preventScroll: true });
  firstRender = false;
  window.scrollTo(0, 0);
  if (!found) {
    document.title = 'Not found · Event store';
    replace(main, h('h1', {}, 'Page not found'),
      h('p', {}, 'Nothing lives at this address. ', h('a', { href: '#/' }, 'Go to the stream types.')));
    return;
  }
  if (found.params.type) document.getElementById('jump-type').value = found.params.type;
  try {
    await found.view.render(main, { params: found.params, query, signal: controller.signal });
  } catch (err) {
    if (err?.name === 'AbortError' || controller.signal.aborted) return;
    console.error(err);
    replace(main, h('h1', {}, 'Error'), errorNotice(err, { onRetry: render }));
  }
}

/** Navigates to a hash route (a history entry, so back/forward work). */
export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

document.getElementById('jump-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.currentTarget;
  const type = form.elements.type.value.trim();
  const id = form.elements.id.value.trim();
  if (type && id) go(route(['streams', type, id]));
});

const keyButton = document.getElementById('api-key-button');
function refreshKeyButton() {
  keyButton.hidden = !getApiKey();
}
keyButton.addEventListener('click', async () => {
  setApiKey(null);
  refreshKeyButton();
  if (await promptForApiKey('Enter a new API key, or cancel to go on without one.')) render();
  refreshKeyButton();
});
window.addEventListener('storage', refreshKeyButton);
window.addEventListener('hashchange', () => { render().finally(refreshKeyButton); });
render().finally(refreshKeyButton);

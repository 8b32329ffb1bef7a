// The HTTP client of the stream browser: relative URLs, API key handling,
// error bodies turned into ApiError.

import { h } from './dom.js';

/** The API lives in the directory above `ui/`, wherever that is mounted. */
export const API_BASE = new URL('../', import.meta.url);

const KEY_STORAGE = 'event-store.api-key';

/** An error answer of the API, or a failure to reach it. */
export class ApiError extends Error {
  constructor({ status = 0, code = null, message, requestId = null, details = null, url }) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.details = details;
    this.url = url;
  }
}

export function getApiKey() {
  try { return sessionStorage.getItem(KEY_STORAGE); } catch { return null; }
}

export function setApiKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch { /* storage disabled: the key lives for this request only */ }
}

let pendingPrompt = null;

/**
 * Asks for the API key in a modal dialog. Concurrent callers share one
 * prompt. Resolves to the key, or null when the user cancels.
 */
export function promptForApiKey(reason) {
  if (pendingPrompt) return pendingPrompt;
  pendingPrompt = new Promise((resolve) => {
    const input = h('input', {
      type: 'password', id: 'api-key-input', name: 'api-key', required: true,
      autocomplete: 'current-password', spellcheck: 'false',
    });
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const form = h('form', { method: 'dialog', class: 'stack' },
      h('h2', {}, 'API key required'),
      h('p', {}, reason),
      h('label', { for: 'api-key-input' }, 'API key'),
      input,
      h('p', { class: 'muted small' },
        'Kept in this browser tab only (sessionStorage) and sent as "Authorization: Bearer …".'),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Use key'), cancel));
    const dialog = h('dialog', { class: 'key-dialog', 'aria-labelledby': 'api-key-title' }, form);
    form.querySelector('h2').id = 'api-key-title';
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      if (dialog.open) dialog.close();
      dialog.remove();
      pendingPrompt = null;
      resolve(value);
    };
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      if (!key) { input.focus(); return; }
      setApiKey(key);
      finish(key);
    });
    cancel.addEventListener('click', () => finish(null));
    dialog.addEventListener('cancel', (ev) => { ev.preventDefault(); finish(null); });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
  return pendingPrompt;
}

/** Builds an absolute API URL from a relative path and query parameters. */
export function apiUrl(path, query = {}) {
  const url = new URL(path, API_BASE);
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== '') url.searchParams.set(k, String(v));
  }
  return url;
}

/**
 * Calls the API. Returns `{status, body}` for 2xx; throws ApiError otherwise.
 * On 401 asks for the API key and tries again; a cancelled prompt throws.
 */
export async function api(path, { method = 'GET', query, body, signal } = {}) {
  const url = apiUrl(path, query);
  for (;;) {
    const headers = { Accept: 'application/json' };
    const key = getApiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let init = { method, headers, signal };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(url, init);
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError({
        message: `Cannot reach the event store at ${API_BASE.href} (${err.message || 'network error'}).`,
        url: url.href,
      });
    }
    const text = await res.text();
    let json = null;
    if (text) {
      try { json = JSON.parse(text); } catch { json = null; }
    }
    if (res.ok) return { status: res.status, body: json, text };
    if (res.status === 401) {
      const reason = key
        ? 'The server refused the API key. Enter a valid key to continue.'
        : 'This event store requires an API key.';
      if (key) setApiKey(null);
      const entered = await promptForApiKey(reason);
      if (entered) continue;
      throw new ApiError({
        status: 401, code: 'unauthorized',
        message: 'An API key is needed to talk to this event store.',
        requestId: json?.requestId ?? res.headers.get('x-request-id'), url: url.href,
      });
    }
    throw new ApiError({
      status: res.status,
      code: json?.code ?? null,
      message: json?.message || `${res.status} ${res.statusText || 'error'}`.trim(),
      requestId: json?.requestId ?? res.headers.get('x-request-id'),
      details: json?.details ?? null,
      url: url.href,
    });
  }
}

/** Path helpers: every segment is URL-encoded. */
export const paths = {
  types: () => 'streams',
  streams: (type) => `streams/${encodeURIComponent(type)}`,
  typeFeed: (type) => `streams/${encodeURIComponent(type)}/events`,
  details: (type, id) => `streams/${encodeURIComponent(type)}/${encodeURIComponent(id)}/details`,
  events: (type, id) => `streams/${encodeURIComponent(type)}/${encodeURIComponent(id)}/events`,
  stream: (type, id) => `streams/${encodeURIComponent(type)}/${encodeURIComponent(id)}`,
  truncate: (type, id) => `streams/${encodeURIComponent(type)}/${encodeURIComponent(id)}/truncate`,
  feed: () => 'events',
};

// Pieces shared by the views: error rendering, id validation, stream links.

import { h, link, notice } from './dom.js';
import { ApiError, promptForApiKey } from './api.js';

/** The API's rules for ids (API.md, "Identity and numbering"). */
export const STREAM_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
export const STREAM_ID_RE = /^[A-Za-z0-9_.:@-]{1,128}$/;

/** A message box for an error thrown by `api()` or anything else. */
export function errorNotice(err, { onRetry } = {}) {
  if (!(err instanceof ApiError)) {
    return notice('error', h('strong', {}, 'Something went wrong. '), String(err?.message || err));
  }
  const parts = [];
  const title = err.status
    ? `Error ${err.status}${err.code ? ` (${err.code})` : ''}`
    : 'Network error';
  parts.push(h('strong', {}, title + ': '), err.message);
  if (err.requestId) {
    parts.push(h('div', { class: 'small muted' }, 'Request id: ', h('code', {}, err.requestId)));
  }
  const actions = [];
  if (err.status === 401) {
    actions.push(h('button', {
      type: 'button',
      onclick: async () => { if (await promptForApiKey('Enter the API key of this event store.')) onRetry?.(); },
    }, 'Enter API key'));
  } else if (onRetry) {
    actions.push(h('button', { type: 'button', class: 'secondary', onclick: () => onRetry() }, 'Try again'));
  }
  if (actions.length) parts.push(h('div', { class: 'actions' }, actions));
  return notice('error', ...parts);
}

/** `type / id` as two links (type's streams, the stream itself). */
export function streamLink(type, id) {
  return h('span', { class: 'stream-ref' },
    link(type, ['types', type], {}, { class: 'stream-type' }),
    h('span', { class: 'sep', 'aria-hidden': 'true' }, ' / '),
    link(id, ['streams', type, id], {}, { class: 'stream-id' }));
}

/** A loading placeholder. */
export const loading = (what = 'Loading…') => h('p', { class: 'loading muted', role: 'status' }, what);

/** Page heading with optional sub-title and breadcrumbs. */
export function pageHeader(title, { crumbs = [], sub } = {}) {
  return h('div', { class: 'page-header' },
    crumbs.length ? h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      crumbs.map((c, i) => [i ? h('span', { 'aria-hidden': 'true' }, ' › ') : null, c])) : null,
    h('h1', {}, title),
    sub ? h('p', { class: 'muted sub' }, sub) : null);
}

/** A UUIDv7 string (time-ordered), made without a secure context. */
export function uuidv7() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) { bytes[i] = ms % 256; ms = Math.floor(ms / 256); }
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

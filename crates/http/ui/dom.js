// DOM helpers. Every piece of data reaches the page through text nodes or
// attribute setters, never through HTML parsing, so user data (stream ids,
// event types, payloads) is always rendered inert.

/**
 * Builds an element. `attrs` keys: `class`, `text`, `on<Event>` (listener),
 * `dataset` (object), any other key is set with setAttribute (skipped when
 * null/undefined/false). Children: nodes, strings (as text), arrays, or
 * null/undefined/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Appends children (see `h`) to `parent`. */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces every child of `parent`. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** Encodes one path segment of a hash route. */
export const seg = (s) => encodeURIComponent(String(s));

/** Builds a hash route from segments and query parameters. */
export function route(segments, query = {}) {
  const path = '#/' + segments.map(seg).join('/');
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== '') params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** A link to a hash route. */
export const link = (text, segments, query, attrs = {}) =>
  h('a', { href: route(segments, query), ...attrs }, text);

/** Pretty JSON; strings that hold JSON are shown as they are. */
export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

/** A one-line preview of a JSON value, cut to `max` characters. */
export function preview(value, max = 80) {
  const s = JSON.stringify(value);
  if (s === undefined) return '';
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

/** A collapsible, pretty-printed JSON block. */
export function jsonBlock(value, { open = false, label } = {}) {
  return h('details', { class: 'json', open },
    h('summary', {}, label ? h('span', { class: 'json-label' }, label) : null,
      h('code', { class: 'json-preview' }, preview(value))),
    h('pre', { class: 'json-full' }, h('code', {}, pretty(value))));
}

/** A `<time>` element for an RFC 3339 timestamp, local time in its title. */
export function timeEl(ts) {
  if (!ts) return h('span', { class: 'muted' }, '–');
  const d = new Date(ts);
  const title = Number.isNaN(d.getTime()) ? null : d.toLocaleString();
  return h('time', { datetime: ts, title }, String(ts).replace('T', ' '));
}

/** A table whose cells carry their column name (for the narrow layout). */
export function table(columns, rows, { caption, className } = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: ['data', className].filter(Boolean).join(' ') },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((cells) => tableRow(columns, cells)))));
}

/** One row for `table`. */
export function tableRow(columns, cells) {
  return h('tr', {}, cells.map((cell, i) => h('td', { 'data-label': columns[i] }, cell)));
}

/** A status/message box. kind: info | error | success | warn. */
export function notice(kind, ...children) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}

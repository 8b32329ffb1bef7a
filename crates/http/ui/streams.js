// View: the streams of one type, as the API lists them (by updatedAt,
// oldest first), with an "updated after" filter and next-page links; or
// newest first, by collecting every page when the type is small enough.

import { h, link, notice, replace, route, table, timeEl } from './dom.js';
import { api, paths } from './api.js';
import { loading, pageHeader, STREAM_TYPE_RE } from './common.js';

/** Newest-first collects at most this many pages. */
const MAX_PAGES = 20;

/** `2024-05-01T10:00:00.000Z` -> value for a datetime-local input (local time). */
function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export async function render(main, { params, query, signal }) {
  const type = params.type;
  const after = query.get('updated-after') || '';
  const key = query.get('key') || '';
  const newest = query.get('order') === 'newest';
  document.title = `${type} · streams · Event store`;

  const go = (q) => { location.hash = route(['types', type], q); };

  const afterInput = h('input', { type: 'datetime-local', step: '0.001', id: 'updated-after', name: 'updated-after', value: after ? toLocalInput(after) : null });
  const filter = h('form', { class: 'toolbar', id: 'streams-filter' },
    h('label', { for: 'updated-after' }, 'Updated after (local time)'),
    afterInput,
    h('button', { type: 'submit' }, 'Filter'),
    after ? h('a', { href: route(['types', type], { order: newest ? 'newest' : null }) }, 'Clear filter') : null,
    h('span', { class: 'spacer' }),
    h('span', { class: 'segmented', role: 'group', 'aria-label': 'Order' },
      h('a', { href: route(['types', type], { 'updated-after': after }), 'aria-current': newest ? null : 'true' }, 'Oldest update first'),
      h('a', { href: route(['types', type], { 'updated-after': after, order: 'newest' }), 'aria-current': newest ? 'true' : null }, 'Newest first')));
  filter.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = afterInput.value;
    const d = v ? new Date(v) : null;
    go({ 'updated-after': d && !Number.isNaN(d.getTime()) ? d.toISOString() : null, order: newest ? 'newest' : null });
  });

  const body = h('section', { 'aria-busy': 'true' }, loading());
  replace(main,
    pageHeader(type, {
      crumbs: [h('a', { href: '#/' }, 'Stream types')],
      sub: h('span', {}, 'Streams of this type. ', link('Events of this type (feed)', ['feed', type]), ' · ',
        link('Append to a stream of this type', ['append'], { type })),
    }),
    filter, body);

  if (!STREAM_TYPE_RE.test(type)) {
    replace(body, notice('error', `"${type}" is not a valid stream type (1–100 of A–Z a–z 0–9 _ . -, starting with a letter or digit).`));
    return;
  }

  let streams = [];
  let hasMore = false;
  let nextPageKey = null;
  let incomplete = false;
  if (newest) {
    let pageKey = null;
    for (let i = 0; i < MAX_PAGES; i++) {
      const { body: res } = await api(paths.streams(type), { query: { 'updated-after': after, 'next-page-key': pageKey }, signal });
      const page = res.streamPage;
      streams.push(...page.streams);
      if (!page.hasMore || !page.nextPageKey) { pageKey = null; break; }
      pageKey = page.nextPageKey;
    }
    incomplete = pageKey !== null;
    streams.reverse();
  } else {
    const { body: res } = await api(paths.streams(type), { query: { 'updated-after': after, 'next-page-key': key }, signal });
    const page = res.streamPage;
    streams = page.streams;
    hasMore = page.hasMore;
    nextPageKey = page.nextPageKey;
  }
  body.removeAttribute('aria-busy');

  const parts = [];
  if (incomplete) {
    parts.push(notice('warn', `This type has more streams than ${MAX_PAGES} pages hold, so they cannot be sorted newest first here. `,
      'Shown: the first pages, newest of those first. Use "Oldest update first" with "Updated after" to see the latest ones.'));
  }
  if (!streams.length) {
    parts.push(notice('info', after
      ? `No stream of type "${type}" was updated after ${after}.`
      : `No stream of type "${type}" yet.`));
  } else {
    parts.push(h('p', { class: 'muted small' },
      newest
        ? `${streams.length} stream${streams.length === 1 ? '' : 's'}, most recently updated first.`
        : `Ordered by last update, oldest first${after ? `, updated after ${after}` : ''}${key ? ' (a later page)' : ''}.`));
    parts.push(table(['Stream id', 'Revision', 'Updated at', 'Created at'], streams.map((s) => [
      link(s.streamId, ['streams', s.streamType, s.streamId], {}, { class: 'stream-id' }),
      h('span', { class: 'num' }, String(s.revision)),
      timeEl(s.updatedAt),
      timeEl(s.createdAt),
    ]), { caption: `Streams of type ${type}`, className: 'streams-table' }));
  }
  if (!newest && (key || hasMore)) {
    parts.push(h('nav', { class: 'pager', 'aria-label': 'Pages' },
      key ? h('a', { href: route(['types', type], { 'updated-after': after }), class: 'button secondary' }, '⇤ First page') : null,
      hasMore && nextPageKey
        ? h('a', { href: route(['types', type], { 'updated-after': after, key: nextPageKey }), class: 'button', rel: 'next' }, 'Next page →')
        : null));
  }
  replace(body, ...parts);
}

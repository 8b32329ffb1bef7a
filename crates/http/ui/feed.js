// View: the global feed, or the feed of one stream type, paged by position,
// with a live mode that follows new events by long polling (`wait=20`).

import { h, link, notice, replace, route } from './dom.js';
import { api, ApiError, paths } from './api.js';
import { errorNotice, loading, pageHeader, STREAM_TYPE_RE } from './common.js';
import { eventsTable } from './eventtable.js';

const PAGE = 50;
const CATCH_UP_PAGE = 1000;
const WAIT_SECONDS = 20;
/** The live table keeps this many rows, dropping the oldest. */
const MAX_LIVE_ROWS = 500;

export async function render(main, { params, query, signal }) {
  const type = params.type ?? null;
  const startRaw = query.get('after') ?? '0';
  const title = type ? `Feed of ${type}` : 'Global feed';
  document.title = `${title} · Event store`;
  const here = (q) => route(type ? ['feed', type] : ['feed'], q);
  const path = type ? paths.typeFeed(type) : paths.feed();

  const afterInput = h('input', { type: 'number', min: 0, id: 'feed-after', name: 'after', value: startRaw, inputmode: 'numeric' });
  const liveButton = h('button', { type: 'button', id: 'live-toggle', 'aria-pressed': 'false' }, 'Follow live');
  const status = h('span', { class: 'live-status muted small', role: 'status', 'aria-live': 'polite', id: 'live-status' });
  const toolbar = h('form', { class: 'toolbar', id: 'feed-form' },
    h('label', { for: 'feed-after' }, 'After position'), afterInput, h('button', { type: 'submit', class: 'secondary' }, 'Go'),
    h('span', { class: 'spacer' }), liveButton, status);
  toolbar.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (/^\d+$/.test(afterInput.value)) location.hash = here({ after: afterInput.value === '0' ? null : afterInput.value });
  });

  const body = h('section', { 'aria-busy': 'true' }, loading());
  const errorBox = h('div', { class: 'feed-error' });
  replace(main,
    pageHeader(title, {
      crumbs: type ? [h('a', { href: '#/' }, 'Stream types'), link(type, ['types', type])] : [],
      sub: type
        ? 'Every event of every stream of this type, in feed order (by position).'
        : 'Every event of every stream, in feed order (by position).',
    }),
    toolbar, errorBox, body);

  if (type !== null && !STREAM_TYPE_RE.test(type)) {
    replace(body, notice('error', `"${type}" is not a valid stream type.`));
    return;
  }
  if (!/^\d+$/.test(startRaw)) {
    replace(body, notice('error', 'A position is a whole number. ', h('a', { href: here({}) }, 'Start from the beginning.')));
    return;
  }

  const { body: res } = await api(path, { query: { 'after-position': startRaw, limit: PAGE }, signal });
  let page = res.eventPage;
  let lastPosition = page.lastPosition;
  let hasMore = page.hasMore;
  body.removeAttribute('aria-busy');

  const tableBox = h('div');
  const emptyBox = h('div');
  const pagerBox = h('div');
  replace(body, emptyBox, tableBox, pagerBox);
  const tbl = eventsTable(page.events, { feed: true, caption: title });
  let rows = page.events.length;
  tableBox.append(tbl.element);
  tableBox.hidden = rows === 0;

  const emptyText = () => (startRaw === '0'
    ? (type ? `No event of type "${type}" streams yet.` : 'The store has no events yet.')
    : `No events after position ${startRaw}.`);
  let live = false;
  let liveController = null;

  function refresh() {
    replace(emptyBox, rows ? null : notice('info', emptyText(), live ? ' Waiting for new events…' : ''));
    tableBox.hidden = rows === 0;
    replace(pagerBox, live ? null : h('nav', { class: 'pager', 'aria-label': 'Feed pages' },
      startRaw !== '0' ? h('a', { href: here({}), class: 'button secondary' }, '⇤ From the start') : null,
      h('span', { class: 'muted small page-range' },
        rows ? `${rows} event${rows === 1 ? '' : 's'}, up to position ${lastPosition}` : ''),
      hasMore ? h('a', { href: here({ after: lastPosition }), class: 'button', rel: 'next' }, 'Next page →') : null));
    liveButton.textContent = live ? 'Pause' : 'Follow live';
    liveButton.setAttribute('aria-pressed', String(live));
    liveButton.classList.toggle('live', live);
  }

  async function follow(controller) {
    let backoff = 1000;
    while (live && !controller.signal.aborted) {
      try {
        status.textContent = hasMore ? `Catching up after position ${lastPosition}…` : 'Live: waiting for new events…';
        const { body: r } = await api(path, {
          query: hasMore
            ? { 'after-position': lastPosition, limit: CATCH_UP_PAGE }
            : { 'after-position': lastPosition, limit: PAGE, wait: WAIT_SECONDS },
          signal: controller.signal,
        });
        const p = r.eventPage;
        replace(errorBox);
        backoff = 1000;
        let atBottom = false;
        if (p.events.length) {
          atBottom = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 80;
          tbl.append(p.events);
          tbl.trim(MAX_LIVE_ROWS);
          rows = tbl.rowCount;
          if (rows === MAX_LIVE_ROWS) status.dataset.trimmed = 'true';
        }
        lastPosition = p.lastPosition;
        hasMore = p.hasMore;
        refresh();
        if (p.events.length && atBottom && rows > 0) {
          tableBox.querySelector('tbody tr:last-child')?.scrollIntoView({ block: 'nearest' });
        }
      } catch (err) {
        if (err?.name === 'AbortError' || controller.signal.aborted) return;
        if (err instanceof ApiError && (err.status === 401 || (err.status >= 400 && err.status < 500))) {
          replace(errorBox, errorNotice(err));
          setLive(false);
          return;
        }
        replace(errorBox, errorNotice(err));
        status.textContent = `Connection problem; retrying in ${Math.round(backoff / 1000)} s…`;
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 30000);
      }
    }
  }

  function setLive(on) {
    live = on;
    liveController?.abort();
    liveController = null;
    const q = { after: startRaw === '0' ? null : startRaw, live: on ? '1' : null };
    history.replaceState(null, '', here(q));
    if (on) {
      liveController = new AbortController();
      signal.addEventListener('abort', () => liveController?.abort(), { once: true });
      follow(liveController);
    } else {
      status.textContent = rows ? `Paused at position ${lastPosition}.` : '';
    }
    refresh();
  }

  liveButton.addEventListener('click', () => setLive(!live));
  signal.addEventListener('abort', () => { live = false; liveController?.abort(); }, { once: true });
  refresh();
  if (query.get('live') === '1') setLive(true);
}

// View: one stream's events, with forward/backward paging and a jump to a
// revision. Events are always shown in ascending revision order; a backward
// read (older pages, "latest") is reversed for display.

import { h, link, notice, replace, route, timeEl } from './dom.js';
import { api, ApiError, paths } from './api.js';
import { loading, pageHeader, STREAM_ID_RE, STREAM_TYPE_RE } from './common.js';
import { eventsTable } from './eventtable.js';

const LIMITS = [10, 20, 50, 100, 500];
const DEFAULT_LIMIT = 20;

function nonNegative(v) {
  if (v === null || v === '') return null;
  return /^\d+$/.test(v) ? Number(v) : NaN;
}

export async function render(main, { params, query, signal }) {
  const { type, id } = params;
  document.title = `${type} / ${id} · Event store`;
  const limitRaw = Number(query.get('limit'));
  const limit = LIMITS.includes(limitRaw) ? limitRaw : DEFAULT_LIMIT;
  const after = nonNegative(query.get('after'));
  const before = nonNegative(query.get('before'));
  const fromEnd = query.get('from') === 'end';
  const here = (q) => route(['streams', type, id], { ...q, limit: limit === DEFAULT_LIMIT ? null : limit });

  const infoBox = h('div', { class: 'stream-info' });
  const body = h('section', { 'aria-busy': 'true' }, loading());
  replace(main,
    pageHeader(id, {
      crumbs: [h('a', { href: '#/' }, 'Stream types'), link(type, ['types', type])],
      sub: 'Events of this stream.',
    }),
    infoBox, body);

  if (!STREAM_TYPE_RE.test(type) || !STREAM_ID_RE.test(id)) {
    body.removeAttribute('aria-busy');
    replace(body, notice('error', 'Not a valid stream: a stream type is 1–100 of A–Z a–z 0–9 _ . - (starting with a letter or digit); ',
      'a stream id is 1–128 of A–Z a–z 0–9 _ . - : @.'));
    return;
  }
  if (Number.isNaN(after) || Number.isNaN(before)) {
    body.removeAttribute('aria-busy');
    replace(body, notice('error', 'A revision is a whole number. ', h('a', { href: here({}) }, 'Show the first events.')));
    return;
  }

  let stream = null;
  try {
    stream = (await api(paths.details(type, id), { signal })).body.stream;
  } catch (err) {
    if (err instanceof ApiError && err.status === 410) {
      body.removeAttribute('aria-busy');
      replace(body, notice('info',
        h('strong', {}, 'This stream was deleted'), '. Its events were erased and its id is not used again.'));
      return;
    }
    if (err instanceof ApiError && err.status === 404) {
      body.removeAttribute('aria-busy');
      replace(body, notice('info',
        h('strong', {}, 'This stream does not exist yet'), ' (its revision is 0). ',
        link('Append its first event', ['append'], { type, id, expected: 'no-stream' }), '.'));
      return;
    }
    throw err;
  }

  // Which page to read.
  let q;
  let backward = false;
  if (before !== null) { q = { direction: 'backward', 'before-revision': before, limit }; backward = true; }
  else if (fromEnd) { q = { direction: 'backward', limit }; backward = true; }
  else q = { 'after-revision': after ?? 0, limit };
  const { body: res } = await api(paths.events(type, id), { query: q, signal });
  const page = res.eventPage;
  const events = backward ? [...page.events].reverse() : page.events;
  const current = Math.max(stream.revision, ...events.map((e) => e.revision));

  const firstKept = stream.firstRevision ?? 1;
  replace(infoBox, h('dl', { class: 'facts' },
    h('div', {}, h('dt', {}, 'Type'), h('dd', {}, link(type, ['types', type]))),
    h('div', {}, h('dt', {}, 'Revision'), h('dd', { class: 'num', id: 'stream-revision' }, String(current))),
    firstKept > 1
      ? h('div', {}, h('dt', {}, 'First kept revision'), h('dd', { class: 'num', id: 'stream-first-revision' }, String(firstKept)))
      : null,
    h('div', {}, h('dt', {}, 'Created'), h('dd', {}, timeEl(stream.createdAt))),
    h('div', {}, h('dt', {}, 'Updated'), h('dd', {}, timeEl(stream.updatedAt)))),
    h('p', { class: 'actions' },
      link('Append to this stream', ['append'], { type, id, expected: String(current) }, { class: 'button secondary' }),
      link('Feed of this type', ['feed', type], {}, { class: 'button secondary' }),
      lifecycleButton('Truncate…', 'truncate-stream', () => truncateDialog(type, id, current, firstKept)),
      lifecycleButton('Delete stream…', 'delete-stream', () => deleteDialog(type, id, current))));

  // Toolbar: jump to a revision, page size.
  const jumpInput = h('input', { type: 'number', id: 'jump-revision', name: 'revision', min: 1, max: current || null, required: true, inputmode: 'numeric', placeholder: `1–${current}` });
  const jump = h('form', { class: 'toolbar', id: 'jump-revision-form' },
    h('label', { for: 'jump-revision' }, 'Jump to revision'), jumpInput, h('button', { type: 'submit' }, 'Go'),
    h('span', { class: 'spacer' }),
    h('label', { for: 'page-size' }, 'Per page'),
    (() => {
      const sel = h('select', { id: 'page-size' }, LIMITS.map((n) => h('option', { value: n, selected: n === limit }, String(n))));
      sel.addEventListener('change', () => {
        location.hash = route(['streams', type, id], { ...Object.fromEntries(query), limit: sel.value });
      });
      return sel;
    })());
  jump.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const n = Number(jumpInput.value);
    if (Number.isInteger(n) && n >= 1) location.hash = here({ after: n - 1 });
  });

  const first = events[0]?.revision;
  const last = events[events.length - 1]?.revision;
  const hasOlder = first !== undefined ? first > firstKept : (backward ? false : (after ?? 0) > 0);
  const hasNewer = last !== undefined ? last < current : (backward ? current > 0 && (before ?? 0) <= current : false);
  const navLink = (text, enabled, q, attrs = {}) => enabled
    ? h('a', { href: here(q), class: 'button secondary', ...attrs }, text)
    : h('span', { class: 'button secondary disabled', 'aria-disabled': 'true' }, text);
  const pager = () => h('nav', { class: 'pager', 'aria-label': 'Event pages' },
    navLink('⇤ First', hasOlder || backward, {}, { 'data-page': 'first' }),
    navLink('← Older', hasOlder, { before: first ?? (after ?? 0) + 1 }, { 'data-page': 'older', rel: 'prev' }),
    h('span', { class: 'muted small page-range' }, events.length ? `Revisions ${first}–${last} of ${current}` : 'No events here'),
    navLink('Newer →', hasNewer, { after: last ?? Math.max(0, (before ?? 1) - 1) }, { 'data-page': 'newer', rel: 'next' }),
    navLink('Latest ⇥', hasNewer || !backward, { from: 'end' }, { 'data-page': 'latest' }));

  body.removeAttribute('aria-busy');
  if (!events.length) {
    replace(body, jump, pager(), notice('info', current
      ? `No events in this range; the stream has ${current} event${current === 1 ? '' : 's'}.`
      : 'This stream has no events.'));
    return;
  }
  replace(body, jump, pager(),
    eventsTable(events, { caption: `Events of ${type} / ${id}` }).element,
    pager());
}

/** Shows the stream's page again, fresh from the server. */
function reload(type, id) {
  const target = route(['streams', type, id], {});
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = target;
}

function lifecycleButton(text, id, open) {
  const b = h('button', { type: 'button', class: 'danger', id }, text);
  b.addEventListener('click', open);
  return b;
}

/**
 * A confirmation dialog that names the stream and enables its action only
 * once the stream id is typed. `extra` are more form fields; `act` gets the
 * form and returns a promise; errors are shown in the dialog.
 */
function confirmDialog({ title, what, id, extra = [], action, act }) {
  const typed = h('input', { type: 'text', id: 'confirm-stream-id', name: 'confirm', autocomplete: 'off', spellcheck: 'false', required: true });
  const go = h('button', { type: 'submit', class: 'danger', disabled: true }, action);
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const error = h('div', { class: 'dialog-error', role: 'alert' });
  const form = h('form', { method: 'dialog', class: 'stack' },
    h('h2', { id: 'confirm-title' }, title),
    h('p', {}, what),
    ...extra,
    h('label', { for: 'confirm-stream-id' }, 'Type the stream id ', h('code', {}, id), ' to confirm'),
    typed, error,
    h('div', { class: 'actions' }, go, cancel));
  const dialog = h('dialog', { class: 'confirm-dialog', 'aria-labelledby': 'confirm-title' }, form);
  const close = () => { if (dialog.open) dialog.close(); dialog.remove(); };
  typed.addEventListener('input', () => { go.disabled = typed.value.trim() !== id; });
  cancel.addEventListener('click', close);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (typed.value.trim() !== id) return;
    go.disabled = true;
    try {
      await act(form);
      close();
    } catch (err) {
      replace(error, notice('error', err.message || String(err),
        err.requestId ? h('span', { class: 'muted small' }, ` (request ${err.requestId})`) : null));
      go.disabled = false;
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  typed.focus();
}

function deleteDialog(type, id, current) {
  confirmDialog({
    title: 'Delete this stream?',
    what: h('span', {}, 'Stream ', h('strong', {}, `${type} / ${id}`),
      ` and its ${current} event${current === 1 ? '' : 's'} will be erased. Reads and appends then answer 410, and the id is never used again. This cannot be undone.`),
    id,
    action: 'Delete stream',
    act: async () => {
      await api(paths.stream(type, id), { method: 'DELETE', query: { 'expected-revision': current } });
      reload(type, id);
    },
  });
}

function truncateDialog(type, id, current, firstKept) {
  const before = h('input', { type: 'number', id: 'truncate-before', name: 'before', min: 1, max: current, required: true, value: String(Math.min(current, firstKept + 1)) });
  confirmDialog({
    title: 'Truncate this stream?',
    what: h('span', {}, 'The events of ', h('strong', {}, `${type} / ${id}`),
      ' below the revision you choose will be erased. Revisions are not renumbered; appends go on at ', String(current + 1), '.'),
    id,
    extra: [h('label', { for: 'truncate-before' }, 'First revision to keep'), before],
    action: 'Truncate',
    act: async () => {
      const n = Number(before.value);
      if (!Number.isInteger(n) || n < 1 || n > current) throw new Error(`Choose a revision from 1 to ${current}.`);
      await api(paths.truncate(type, id), { method: 'POST', body: { beforeRevision: n }, query: { 'expected-revision': current } });
      reload(type, id);
    },
  });
}

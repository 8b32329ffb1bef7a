// View: a small form to append one event, for development use. The JSON is
// checked here before anything is sent; 409 answers are explained.

import { h, link, notice, replace } from './dom.js';
import { api, ApiError, paths } from './api.js';
import { errorNotice, pageHeader, STREAM_ID_RE, STREAM_TYPE_RE, uuidv7 } from './common.js';

const UUID_RE = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

function field(id, label, control, hint) {
  const hintEl = hint ? h('p', { class: 'hint small muted', id: `${id}-hint` }, hint) : null;
  const errorEl = h('p', { class: 'field-error small', id: `${id}-error`, hidden: true });
  control.id = id;
  control.setAttribute('aria-describedby', [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' '));
  return { wrap: h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl, errorEl), errorEl, control };
}

function setError(f, message) {
  f.errorEl.textContent = message || '';
  f.errorEl.hidden = !message;
  if (message) f.control.setAttribute('aria-invalid', 'true');
  else f.control.removeAttribute('aria-invalid');
}

/** Parses JSON text; returns {value} or {error} with line/column when known. */
function parseJson(text) {
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { error: `Not valid JSON: ${err.message}` };
  }
}

export async function render(main, { query }) {
  document.title = 'Append an event · Event store';
  const expectedParam = query.get('expected') || 'any';

  const typeF = field('append-type', 'Stream type', h('input', { name: 'streamType', required: true, autocomplete: 'off', spellcheck: 'false', value: query.get('type') }),
    '1–100 of A–Z a–z 0–9 _ . -, starting with a letter or digit.');
  const idInput = h('input', { name: 'streamId', required: true, autocomplete: 'off', spellcheck: 'false', value: query.get('id') });
  const idF = field('append-id', 'Stream id', idInput, '1–128 of A–Z a–z 0–9 _ . - : @.');
  const newId = h('button', { type: 'button', class: 'secondary small-button', onclick: () => { idInput.value = uuidv7(); idInput.focus(); } }, 'New id');
  idF.wrap.insertBefore(h('div', { class: 'inline' }, idInput, newId), idF.wrap.children[1]);

  const modeSelect = h('select', { name: 'expectedMode' },
    h('option', { value: 'any' }, 'any (no check)'),
    h('option', { value: 'no-stream' }, 'no-stream (must not exist)'),
    h('option', { value: 'exists' }, 'exists (must exist)'),
    h('option', { value: 'number' }, 'exact revision…'));
  const isNumber = /^\d+$/.test(expectedParam);
  modeSelect.value = isNumber ? 'number' : (['any', 'no-stream', 'exists'].includes(expectedParam) ? expectedParam : 'any');
  const revInput = h('input', { type: 'number', name: 'expectedRevision', min: 0, inputmode: 'numeric', value: isNumber ? expectedParam : '0', 'aria-label': 'Expected revision number' });
  const expF = field('append-expected', 'Expected revision', modeSelect, 'The stream\'s current revision for an exact check (0: the stream must not exist yet).');
  const expInline = h('div', { class: 'inline' }, modeSelect, revInput);
  expF.wrap.insertBefore(expInline, expF.wrap.children[1]);
  const syncMode = () => { revInput.hidden = modeSelect.value !== 'number'; };
  modeSelect.addEventListener('change', () => { syncMode(); if (!revInput.hidden) revInput.focus(); });
  syncMode();

  const eventTypeF = field('append-event-type', 'Event type', h('input', { name: 'eventType', required: true, autocomplete: 'off', spellcheck: 'false', value: query.get('eventType') }),
    '1–200 characters, no control characters, no leading or trailing space.');
  const payloadF = field('append-payload', 'Payload (JSON)', h('textarea', { name: 'payload', rows: 6, spellcheck: 'false', class: 'code' }),
    'Any JSON value. Ctrl+Enter sends the form.');
  payloadF.control.value = '{\n  \n}';
  const metadataF = field('append-metadata', 'Metadata (JSON object, optional)', h('textarea', { name: 'metadata', rows: 3, spellcheck: 'false', class: 'code' }));
  const eventIdF = field('append-event-id', 'Event id (optional)', h('input', { name: 'eventId', autocomplete: 'off', spellcheck: 'false' }),
    'A UUID; the server makes one when empty. Sending the same id again is recognised as a retry.');

  const submit = h('button', { type: 'submit' }, 'Append event');
  const result = h('div', { class: 'append-result', id: 'append-result', 'aria-live': 'polite' });
  const form = h('form', { class: 'append-form', id: 'append-form', novalidate: true },
    h('div', { class: 'grid-2' }, typeF.wrap, idF.wrap),
    h('div', { class: 'grid-2' }, expF.wrap, eventTypeF.wrap),
    payloadF.wrap, metadataF.wrap, eventIdF.wrap,
    h('div', { class: 'actions' }, submit));

  for (const ta of [payloadF.control, metadataF.control]) {
    ta.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); form.requestSubmit(); }
    });
  }

  function validate() {
    const all = [typeF, idF, expF, eventTypeF, payloadF, metadataF, eventIdF];
    all.forEach((f) => setError(f, null));
    setError({ errorEl: expF.errorEl, control: revInput }, null);
    const problems = [];
    const bad = (f, msg) => { setError(f, msg); problems.push(f); };
    const type = typeF.control.value.trim();
    const id = idInput.value.trim();
    if (!STREAM_TYPE_RE.test(type)) bad(typeF, type ? 'Not a valid stream type.' : 'Enter a stream type.');
    if (!STREAM_ID_RE.test(id)) bad(idF, id ? 'Not a valid stream id.' : 'Enter a stream id.');
    let expectedRevision = modeSelect.value;
    if (expectedRevision === 'number') {
      if (!/^\d+$/.test(revInput.value)) {
        setError({ errorEl: expF.errorEl, control: revInput }, 'Enter a whole number ≥ 0.');
        problems.push({ control: revInput });
      } else expectedRevision = Number(revInput.value);
    }
    const eventType = eventTypeF.control.value;
    if (!eventType) bad(eventTypeF, 'Enter an event type.');
    else if (eventType.length > 200 || CONTROL_RE.test(eventType) || eventType.trim() !== eventType) {
      bad(eventTypeF, '1–200 characters, no control characters, no leading or trailing space.');
    }
    const payload = parseJson(payloadF.control.value);
    if (payload.error) bad(payloadF, payloadF.control.value.trim() ? payload.error : 'Enter a JSON value (for example {} or "text").');
    let metadata;
    if (metadataF.control.value.trim()) {
      const m = parseJson(metadataF.control.value);
      if (m.error) bad(metadataF, m.error);
      else if (!m.value || typeof m.value !== 'object' || Array.isArray(m.value)) bad(metadataF, 'Metadata must be a JSON object ({…}).');
      else metadata = m.value;
    }
    const eventId = eventIdF.control.value.trim();
    if (eventId && !UUID_RE.test(eventId)) bad(eventIdF, 'Not a UUID.');
    if (problems.length) { problems[0].control.focus(); return null; }
    const event = { eventType, payload: payload.value };
    if (metadata !== undefined) event.metadata = metadata;
    if (eventId) event.eventId = eventId;
    return { type, id, body: { expectedRevision, events: [event] } };
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const req = validate();
    if (!req) { replace(result); return; }
    submit.disabled = true;
    replace(result, h('p', { class: 'muted', role: 'status' }, 'Sending…'));
    try {
      const { status, body } = await api(paths.events(req.type, req.id), { method: 'POST', body: req.body });
      const rev = body.lastRevision;
      replace(result, notice('success',
        h('strong', {}, status === 200 ? 'Already appended (a retry of the same events). ' : 'Appended. '),
        `Revision ${rev} of `, link(`${req.type} / ${req.id}`, ['streams', req.type, req.id], { after: Math.max(0, rev - 1) }),
        `; the stream is now at revision ${body.stream.revision}.`,
        h('div', { class: 'actions' }, h('button', {
          type: 'button', class: 'secondary',
          onclick: () => { modeSelect.value = 'number'; revInput.value = String(body.stream.revision); syncMode(); eventIdF.control.value = ''; payloadF.control.focus(); },
        }, `Next append expects revision ${body.stream.revision}`))));
    } catch (err) {
      replace(result, conflictOrError(err, (actual) => {
        modeSelect.value = 'number';
        revInput.value = String(actual);
        syncMode();
        revInput.focus();
      }));
    } finally {
      submit.disabled = false;
      result.scrollIntoView({ block: 'nearest' });
    }
  });

  replace(main,
    pageHeader('Append an event', { sub: 'For development: appends one event with POST …/events and an expected revision.' }),
    h('div', { class: 'append-layout' }, form, result));
  (typeF.control.value ? (idInput.value ? eventTypeF.control : idInput) : typeF.control).focus();
}

function conflictOrError(err, useActual) {
  if (!(err instanceof ApiError) || err.status !== 409) return errorNotice(err);
  const d = err.details && typeof err.details === 'object' ? err.details : {};
  const requestId = err.requestId ? h('div', { class: 'small muted' }, 'Request id: ', h('code', {}, err.requestId)) : null;
  if (err.code === 'duplicate-event') {
    return notice('error', h('strong', {}, '409 Conflict: duplicate event. '),
      'An event with this event id is already in the stream, in another place than this append would put it. Nothing was written. ',
      h('div', { class: 'server-message' }, 'Server: ', err.message), requestId);
  }
  const actual = d.actualRevision;
  const expected = d.expectedRevision;
  const known = actual !== undefined && actual !== null;
  return notice('error', h('strong', {}, '409 Conflict: wrong expected revision. '),
    `Expected ${expected !== undefined ? JSON.stringify(expected) : 'another revision'}, `,
    known ? ['but the stream is at revision ', h('strong', { class: 'actual-revision' }, String(actual)), '. '] : '',
    'Nothing was written.',
    h('div', { class: 'server-message' }, 'Server: ', err.message), requestId,
    known && /^\d+$/.test(String(actual))
      ? h('div', { class: 'actions' }, h('button', { type: 'button', class: 'secondary', onclick: () => useActual(Number(actual)) }, `Expect revision ${actual}`))
      : null);
}

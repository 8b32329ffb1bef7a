// The table of events shared by the stream view and the feeds.

import { h, jsonBlock, table, tableRow, timeEl } from './dom.js';
import { streamLink } from './common.js';

const STREAM_COLUMNS = ['Revision', 'Event type', 'Time', 'Event id', 'Position', 'Payload', 'Metadata'];
const FEED_COLUMNS = ['Position', 'Stream', 'Revision', 'Event type', 'Time', 'Event id', 'Payload', 'Metadata'];

function cells(e, feed) {
  const position = e.position === undefined || e.position === null
    ? h('span', { class: 'muted', title: 'not assigned yet' }, '–')
    : h('span', { class: 'num' }, String(e.position));
  const common = {
    revision: h('span', { class: 'num' }, String(e.revision)),
    type: h('span', { class: 'event-type' }, e.eventType),
    time: timeEl(e.createdAt),
    id: h('code', { class: 'event-id' }, e.eventId),
    payload: jsonBlock(e.payload),
    metadata: e.metadata && typeof e.metadata === 'object' && Object.keys(e.metadata).length === 0
      ? h('span', { class: 'muted' }, '{}')
      : jsonBlock(e.metadata),
  };
  return feed
    ? [position, streamLink(e.streamType, e.streamId), common.revision, common.type, common.time, common.id, common.payload, common.metadata]
    : [common.revision, common.type, common.time, common.id, position, common.payload, common.metadata];
}

/** A table of events; `feed` adds the stream column and leads with the position. */
export function eventsTable(events, { feed = false, caption } = {}) {
  const columns = feed ? FEED_COLUMNS : STREAM_COLUMNS;
  const wrap = table(columns, events.map((e) => cells(e, feed)), { caption, className: 'events-table' });
  const tbody = wrap.querySelector('tbody');
  events.forEach((e, i) => { tbody.rows[i].dataset.revision = String(e.revision); if (e.position != null) tbody.rows[i].dataset.position = String(e.position); });
  return {
    element: wrap,
    /** Adds rows at the end (live feed). */
    append(more) {
      for (const e of more) {
        const row = tableRow(columns, cells(e, feed));
        row.dataset.revision = String(e.revision);
        if (e.position != null) row.dataset.position = String(e.position);
        row.classList.add('new');
        tbody.append(row);
      }
    },
    /** Keeps at most `max` rows (drops the oldest). */
    trim(max) {
      while (tbody.rows.length > max) tbody.rows[0].remove();
    },
    get rowCount() { return tbody.rows.length; },
  };
}

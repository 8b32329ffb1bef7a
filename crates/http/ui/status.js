// View: the server's status, from `/readiness-check` and `/metrics`
// (Prometheus text): readiness, the feed's head position, events, streams
// and log size, and appends per second over the last minutes as a small
// chart (inline SVG). The page samples every few seconds while it is open;
// the samples are kept while the page is loaded, so the chart grows from
// the moment the status view was first opened.

import { h, notice, replace } from './dom.js';
import { api, ApiError } from './api.js';
import { errorNotice, pageHeader } from './common.js';

/** Seconds between two samples. */
export const SAMPLE_SECONDS = 2;
/** Samples the chart shows: five minutes. */
const KEEP = 150;

/** `{time, appends}` samples of the written-appends counter, oldest first. */
const samples = [];

/** Parses Prometheus text into name -> [{labels, value}]. */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    const value = Number(m[3]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value });
  }
  return out;
}

/** The value of `name` with all of `labels`, or null when absent. */
function value(metrics, name, labels = {}) {
  const found = (metrics.get(name) ?? []).find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found ? found.value : null;
}

const fmt = (n) => (n === null ? '—' : Math.round(n).toLocaleString('en'));

function bytes(n) {
  if (n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Appends per second between consecutive samples, oldest first. */
function rates() {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].time - samples[i - 1].time) / 1000;
    const d = samples[i].appends - samples[i - 1].appends;
    out.push(dt > 0 && d >= 0 ? d / dt : 0);
  }
  return out;
}

/** The bar chart of appends per second (one bar per sample interval). */
function chart() {
  const width = 600;
  const height = 120;
  const r = rates();
  const max = Math.max(1, ...r);
  const bar = width / (KEEP - 1);
  const root = svg('svg', {
    viewBox: `0 0 ${width} ${height + 16}`, class: 'rate-chart', role: 'img', id: 'appends-chart',
    'aria-label': `Appends per second over the last ${Math.round((KEEP * SAMPLE_SECONDS) / 60)} minutes; latest ${r.length ? r[r.length - 1].toFixed(1) : 'not yet measured'}, highest ${max.toFixed(1)}`,
  });
  root.append(svg('line', { x1: 0, y1: height, x2: width, y2: height, class: 'axis' }));
  root.append(svg('text', { x: 2, y: 11, class: 'label' }, `${max.toFixed(max < 10 ? 1 : 0)}/s`));
  root.append(svg('text', { x: 2, y: height + 13, class: 'label' }, `${Math.round((KEEP * SAMPLE_SECONDS) / 60)} min ago`));
  root.append(svg('text', { x: width - 2, y: height + 13, class: 'label', 'text-anchor': 'end' }, 'now'));
  const offset = KEEP - 1 - r.length;
  r.forEach((rate, i) => {
    const hgt = (rate / max) * (height - 16);
    root.append(svg('rect', {
      x: ((offset + i) * bar).toFixed(2), y: (height - hgt).toFixed(2), width: Math.max(1, bar - 1).toFixed(2),
      height: hgt.toFixed(2), class: 'bar', 'data-rate': rate.toFixed(3),
    }));
  });
  return root;
}

function card(label, id, text) {
  return h('div', { class: 'stat' }, h('div', { class: 'stat-label muted small' }, label), h('div', { class: 'stat-value num', id }, text));
}

async function readiness(signal) {
  try {
    await api('readiness-check', { signal });
    return { ready: true, reason: null };
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    if (err instanceof ApiError && err.status === 503) return { ready: false, reason: err.message };
    throw err;
  }
}

export async function render(main, { signal }) {
  document.title = 'Status · Event store';
  const box = h('div', { 'aria-busy': 'true' });
  replace(main, pageHeader('Status', { sub: `The server's readiness and the store's size, sampled every ${SAMPLE_SECONDS} s from /metrics.` }), box);

  const refresh = async () => {
    const [ready, { text }] = await Promise.all([readiness(signal), api('metrics', { signal })]);
    const metrics = parseMetrics(text ?? '');
    const appends = value(metrics, 'eventstore_appends_total', { outcome: 'written' }) ?? 0;
    samples.push({ time: Date.now(), appends });
    while (samples.length > KEEP) samples.shift();
    box.removeAttribute('aria-busy');
    replace(box,
      ready.ready
        ? notice('success', h('strong', { id: 'readiness' }, 'Ready'), ': the store takes writes.')
        : notice('error', h('strong', { id: 'readiness' }, 'Not ready'), `: ${ready.reason}`),
      h('div', { class: 'stats' },
        card('Head position', 'stat-head', fmt(value(metrics, 'eventstore_feed_head_position'))),
        card('Events', 'stat-events', fmt(value(metrics, 'eventstore_store_events'))),
        card('Streams', 'stat-streams', fmt(value(metrics, 'eventstore_store_streams'))),
        card('Log on disk', 'stat-bytes', bytes(value(metrics, 'eventstore_store_disk_bytes'))),
        card('Appends written', 'stat-appends', fmt(appends)),
        card('Waiting long polls', 'stat-polls', fmt(value(metrics, 'eventstore_long_polls_open') ?? 0))),
      h('h2', {}, 'Appends per second'),
      chart(),
      h('p', { class: 'muted small' }, 'Prometheus can scrape the same figures at ', h('a', { href: '../metrics' }, '/metrics'), ' (docs/operations.md).'));
  };

  for (;;) {
    try {
      await refresh();
    } catch (err) {
      if (err?.name === 'AbortError' || signal.aborted) return;
      box.removeAttribute('aria-busy');
      replace(box, errorNotice(err, { onRetry: () => refresh().catch(() => {}) }));
      if (err instanceof ApiError && err.status === 404) return;
    }
    await new Promise((resolve) => {
      const t = setTimeout(resolve, SAMPLE_SECONDS * 1000);
      signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
    if (signal.aborted) return;
  }
}

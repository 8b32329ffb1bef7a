// View: every stream type with its number of streams.

import { h, link, notice, replace, table } from './dom.js';
import { api, paths } from './api.js';
import { loading, pageHeader } from './common.js';

export async function render(main, { signal }) {
  document.title = 'Stream types · Event store';
  const body = h('section', { 'aria-busy': 'true' }, loading());
  replace(main, pageHeader('Stream types'), body);
  const { body: res } = await api(paths.types(), { signal });
  const list = res?.streamTypes ?? [];
  body.removeAttribute('aria-busy');
  if (!list.length) {
    replace(body, notice('info',
      h('strong', {}, 'This event store is empty. '),
      'No stream has been written yet. ',
      link('Append a first event', ['append']), ' or use the ',
      h('a', { href: '../openapi/' }, 'API'), '.'));
    return;
  }
  const total = list.reduce((n, t) => n + Number(t.streams || 0), 0);
  replace(body,
    h('p', { class: 'muted' }, `${list.length} stream type${list.length === 1 ? '' : 's'}, ${total} stream${total === 1 ? '' : 's'}. `,
      link('Global feed', ['feed']), '.'),
    table(['Stream type', 'Streams', 'Feed'], list.map((t) => [
      link(t.streamType, ['types', t.streamType], {}, { class: 'stream-type' }),
      h('span', { class: 'num' }, String(t.streams)),
      link('events of this type', ['feed', t.streamType]),
    ]), { caption: 'Stream types', className: 'types-table' }));
}

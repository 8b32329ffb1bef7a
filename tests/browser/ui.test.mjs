// Browser tests of the stream browser (`/ui/`), against the real server.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  appendEvents, http, launchBrowser, newPage, screenshotDir, startPrefixProxy, startServer,
} from './lib.mjs';

let browser;
let shots;
before(async () => {
  browser = await launchBrowser();
  shots = await screenshotDir();
});
after(async () => { await browser?.close(); });

/** Runs `fn(server)` against a fresh server, always stopping it. */
async function withServer(opts, fn) {
  const server = await startServer(opts);
  try { return await fn(server); } finally { await server.stop(); }
}

const shot = (page, name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: false });

/** Text of the cells of one column of the first data table, in order. */
async function column(page, label) {
  return page.locator(`table.data tbody td[data-label="${label}"]`).allTextContents();
}

async function seedShop(server) {
  for (let i = 1; i <= 3; i++) {
    await appendEvents(server, 'Order', `order-${i}`, 'no-stream', [
      { eventType: 'OrderPlaced', payload: { orderNo: i, total: 12.5 * i, lines: [{ sku: 'A-1', qty: i }] }, metadata: { user: 'ann' } },
    ]);
  }
  const many = Array.from({ length: 25 }, (_, i) => ({ eventType: i % 2 ? 'ItemAdded' : 'ItemRemoved', payload: { n: i + 2 } }));
  await appendEvents(server, 'Order', 'order-1', 1, many);
  await appendEvents(server, 'Customer', 'cust-7', 'no-stream', [{ eventType: 'CustomerRegistered', payload: { name: 'Ann Example', email: 'ann@example.com' } }]);
}

/** A few events of several types, small enough to fit one screen. */
async function seedSmall(server) {
  await appendEvents(server, 'Order', 'order-1', 'no-stream', [
    { eventType: 'OrderPlaced', payload: { orderNo: 1, total: 12.5, lines: [{ sku: 'A-1', qty: 1 }] }, metadata: { user: 'ann' } },
  ]);
  await appendEvents(server, 'Customer', 'cust-7', 'no-stream', [{ eventType: 'CustomerRegistered', payload: { name: 'Ann Example', email: 'ann@example.com' } }]);
  await appendEvents(server, 'Order', 'order-1', 1, [
    { eventType: 'ItemAdded', payload: { sku: 'B-2', qty: 2 } },
    { eventType: 'OrderConfirmed', payload: 'confirmed by phone' },
  ]);
  await appendEvents(server, 'Order', 'order-2', 'no-stream', [{ eventType: 'OrderPlaced', payload: { orderNo: 2, total: 99 } }]);
}

describe('stream browser', () => {
  test('the root redirects to the UI and an empty store says so', async () => {
    await withServer({}, async (server) => {
      const page = await newPage(browser);
      await page.goto(`${server.base}/`);
      await page.waitForURL(/\/ui\/(#.*)?$/);
      await page.getByText('This event store is empty').waitFor();
      assert.equal(await page.getByRole('link', { name: 'Append a first event' }).count(), 1);
      assert.equal(await page.locator('#api-link').getAttribute('href'), '../openapi/');
      const apiPage = await page.request.get(new URL('../openapi/', page.url()).href);
      assert.equal(apiPage.status(), 200, 'the API page link resolves');
      assert.deepEqual(page.pageErrors, []);
      await page.context().close();
    });
  });

  test('browse stream types, then streams of a type, then one stream\'s events', async () => {
    await withServer({}, async (server) => {
      await seedShop(server);
      const page = await newPage(browser);
      await page.goto(server.uiUrl);

      // Types with counts.
      await page.locator('table.types-table').waitFor();
      assert.deepEqual(await column(page, 'Stream type'), ['Customer', 'Order']);
      assert.deepEqual(await column(page, 'Streams'), ['1', '3']);
      await shot(page, 'types');

      // Streams of a type, in the API's order (by updatedAt ascending): order-1 was updated last.
      await page.getByRole('link', { name: 'Order', exact: true }).click();
      await page.waitForURL(/#\/types\/Order$/);
      await page.locator('table.streams-table').waitFor();
      assert.deepEqual(await column(page, 'Stream id'), ['order-2', 'order-3', 'order-1']);
      assert.deepEqual(await column(page, 'Revision'), ['1', '1', '26']);
      await shot(page, 'streams');

      // Newest first.
      await page.getByRole('link', { name: 'Newest first' }).click();
      await page.waitForURL(/order=newest/);
      await page.getByText('most recently updated first').waitFor();
      assert.deepEqual(await column(page, 'Stream id'), ['order-1', 'order-3', 'order-2']);

      // Updated-after filter: after order-3's update only order-1 remains.
      const { body: o3 } = await http(server, 'GET', 'streams/Order/order-3/details');
      await page.goto(`${server.uiUrl}#/types/Order?updated-after=${encodeURIComponent(o3.stream.updatedAt)}`);
      await page.getByText('updated after').first().waitFor();
      await page.waitForFunction(() => document.querySelectorAll('table.streams-table tbody tr').length === 1);
      assert.deepEqual(await column(page, 'Stream id'), ['order-1']);

      // One stream's events: first page of 20, ascending.
      await page.getByRole('link', { name: 'order-1', exact: true }).click();
      await page.waitForURL(/#\/streams\/Order\/order-1$/);
      await page.locator('table.events-table').waitFor();
      let revisions = await column(page, 'Revision');
      assert.equal(revisions.length, 20);
      assert.equal(revisions[0], '1');
      assert.equal(revisions[19], '20');
      assert.equal((await column(page, 'Event type'))[0], 'OrderPlaced');
      assert.equal(await page.locator('#stream-revision').textContent(), '26');

      // The payload is collapsible and pretty-printed.
      const firstPayload = page.locator('table.events-table tbody tr').first().locator('td[data-label="Payload"] details');
      assert.equal(await firstPayload.getAttribute('open'), null);
      await firstPayload.locator('summary').click();
      const pre = await firstPayload.locator('pre').textContent();
      assert.equal(pre, JSON.stringify({ orderNo: 1, total: 12.5, lines: [{ sku: 'A-1', qty: 1 }] }, null, 2));
      const meta = page.locator('table.events-table tbody tr').first().locator('td[data-label="Metadata"] details');
      await meta.locator('summary').click();
      assert.match(await meta.locator('pre').textContent(), /"user": "ann"/);
      await shot(page, 'events');

      // Forward paging.
      await page.locator('a[data-page="newer"]').first().click();
      await page.waitForURL(/after=20/);
      await page.waitForFunction(() => document.querySelector('table.events-table tbody tr td')?.textContent === '21');
      assert.deepEqual(await column(page, 'Revision'), ['21', '22', '23', '24', '25', '26']);
      assert.equal(await page.locator('a[data-page="newer"]').count(), 0, 'no newer page at the end');

      // Backward paging: the page before revision 21, shown in ascending order.
      await page.locator('a[data-page="older"]').first().click();
      await page.waitForURL(/before=21/);
      await page.waitForFunction(() => document.querySelector('table.events-table tbody tr td')?.textContent === '1');
      revisions = await column(page, 'Revision');
      assert.equal(revisions.length, 20);
      assert.equal(revisions[19], '20');

      // Latest.
      await page.locator('a[data-page="latest"]').first().click();
      await page.waitForURL(/from=end/);
      await page.waitForFunction(() => document.querySelector('table.events-table tbody tr td')?.textContent === '7');
      revisions = await column(page, 'Revision');
      assert.equal(revisions[revisions.length - 1], '26');

      // Jump to a revision (the form submits with Enter).
      await page.getByLabel('Jump to revision').fill('13');
      await page.getByLabel('Jump to revision').press('Enter');
      await page.waitForURL(/after=12/);
      await page.waitForFunction(() => document.querySelector('table.events-table tbody tr td')?.textContent === '13');

      // Back and forward work with the hash routes.
      await page.goBack();
      await page.waitForURL(/from=end/);
      await page.waitForFunction(() => document.querySelector('table.events-table tbody tr td')?.textContent === '7');
      await page.goForward();
      await page.waitForURL(/after=12/);
      await page.waitForFunction(() => document.querySelector('table.events-table tbody tr td')?.textContent === '13');

      // Reload keeps the view.
      await page.reload();
      await page.waitForFunction(() => document.querySelector('table.events-table tbody tr td')?.textContent === '13');

      // Open a stream by type + id from the header.
      await page.locator('#jump-type').fill('Customer');
      await page.locator('#jump-id').fill('cust-7');
      await page.locator('#jump-id').press('Enter');
      await page.waitForURL(/#\/streams\/Customer\/cust-7$/);
      await page.locator('td[data-label="Event type"]', { hasText: 'CustomerRegistered' }).waitFor();
      assert.deepEqual(await column(page, 'Event type'), ['CustomerRegistered']);

      // A stream that does not exist.
      await page.locator('#jump-id').fill('nobody');
      await page.locator('#jump-id').press('Enter');
      await page.getByText('This stream does not exist yet').waitFor();

      // Phone width.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${server.uiUrl}#/streams/Order/order-1?limit=10`);
      await page.locator('table.events-table').waitFor();
      const tableWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(tableWidth <= 390, `no horizontal scrolling at phone width (page is ${tableWidth}px wide)`);
      await shot(page, 'events-phone');

      assert.deepEqual(page.pageErrors, []);
      await page.context().close();
    });
  });

  test('the live feed shows an event appended over HTTP, and pauses', async () => {
    await withServer({}, async (server) => {
      await seedSmall(server);
      const page = await newPage(browser);
      await page.goto(`${server.uiUrl}#/feed`);
      await page.locator('table.events-table').waitFor();
      const positions = (await column(page, 'Position')).map(Number);
      assert.equal(positions.length, 5);
      assert.deepEqual(positions, [...positions].sort((a, b) => a - b), 'feed order is by position');

      await page.getByRole('button', { name: 'Follow live' }).click();
      await page.getByText('Live: waiting for new events').waitFor();
      // Give the long poll time to be held by the server, then append.
      await page.waitForTimeout(300);
      await appendEvents(server, 'Invoice', 'inv-1', 'no-stream', [{ eventType: 'InvoiceIssued', payload: { amount: 99 } }]);
      await page.locator('td[data-label="Event type"]', { hasText: 'InvoiceIssued' }).waitFor({ timeout: 10_000 });
      assert.equal(await page.locator('table.events-table tbody tr').count(), 6);
      await shot(page, 'feed-live');

      // Paused: a new event does not show up.
      await page.getByRole('button', { name: 'Pause' }).click();
      await page.getByRole('button', { name: 'Follow live' }).waitFor();
      await appendEvents(server, 'Invoice', 'inv-1', 1, [{ eventType: 'InvoicePaid', payload: {} }]);
      await page.waitForTimeout(1500);
      assert.equal(await page.locator('td[data-label="Event type"]', { hasText: 'InvoicePaid' }).count(), 0);
      // Resumed: it does.
      await page.getByRole('button', { name: 'Follow live' }).click();
      await page.locator('td[data-label="Event type"]', { hasText: 'InvoicePaid' }).waitFor({ timeout: 10_000 });

      // The feed of one stream type holds only that type.
      await page.goto(`${server.uiUrl}#/feed/Customer`);
      await page.getByRole('heading', { name: 'Feed of Customer' }).waitFor();
      await page.locator('table.events-table').waitFor();
      assert.deepEqual(await column(page, 'Event type'), ['CustomerRegistered']);
      await page.getByRole('button', { name: 'Follow live' }).click();
      await page.getByText('Live: waiting for new events').waitFor();
      await page.waitForTimeout(300);
      await appendEvents(server, 'Order', 'order-9', 'no-stream', [{ eventType: 'OrderPlaced', payload: {} }]);
      await appendEvents(server, 'Customer', 'cust-8', 'no-stream', [{ eventType: 'CustomerMoved', payload: { city: 'Oslo' } }]);
      await page.locator('td[data-label="Event type"]', { hasText: 'CustomerMoved' }).waitFor({ timeout: 10_000 });
      assert.deepEqual(await column(page, 'Event type'), ['CustomerRegistered', 'CustomerMoved']);
      assert.deepEqual(page.pageErrors, []);
      await page.context().close();
    });
  });

  test('the status view shows readiness, head, events, streams and a chart of appends per second', async () => {
    await withServer({}, async (server) => {
      await seedSmall(server);
      const page = await newPage(browser);
      await page.goto(`${server.uiUrl}#/status`);
      await page.getByRole('heading', { name: 'Status' }).waitFor();
      await page.locator('#readiness', { hasText: 'Ready' }).waitFor();
      assert.equal(await page.locator('#stat-head').textContent(), '5');
      assert.equal(await page.locator('#stat-events').textContent(), '5');
      assert.equal(await page.locator('#stat-streams').textContent(), '3');
      assert.equal(await page.locator('#stat-appends').textContent(), '4');
      // Appends over a few samples: the chart shows them as bars.
      for (let i = 1; i <= 12; i++) {
        await appendEvents(server, 'Ticket', `t-${i}`, 'no-stream', [{ eventType: 'TicketOpened', payload: { n: i } }]);
        await page.waitForTimeout(400);
      }
      await page.locator('#stat-head', { hasText: '17' }).waitFor({ timeout: 10_000 });
      assert.equal(await page.locator('#stat-streams').textContent(), '15');
      await page.waitForFunction(() => [...document.querySelectorAll('#appends-chart rect.bar')]
        .some((r) => Number(r.dataset.rate) > 0), null, { timeout: 10_000 });
      const label = await page.locator('#appends-chart').getAttribute('aria-label');
      assert.match(label, /Appends per second over the last 5 minutes/);
      assert.equal(await page.locator('link[href^="http"], script[src^="http"]').count(), 0, 'no external assets');
      await shot(page, 'status');
      assert.deepEqual(page.pageErrors, []);
      await page.context().close();
    });
  });

  test('the append form: success, wrong expected revision, duplicate event, invalid JSON', async () => {
    await withServer({}, async (server) => {
      const page = await newPage(browser);
      await page.goto(`${server.uiUrl}#/append`);
      const form = page.locator('#append-form');
      await form.getByLabel('Stream type').fill('Order');
      await form.getByLabel('Stream id', { exact: true }).fill('order-42');
      await form.getByLabel('Expected revision', { exact: true }).selectOption('no-stream');
      await form.getByLabel('Event type').fill('OrderPlaced');
      await form.getByLabel('Payload (JSON)').fill('{"total": 30, "currency": "EUR"}');
      await form.getByLabel('Event id (optional)').fill('0190a5c2-7d1e-7c3a-9b1e-2f4d6a8c0e11');
      await form.getByLabel('Event type').press('Enter');
      await page.locator('.notice-success').waitFor();
      assert.match(await page.locator('.notice-success').textContent(), /Appended\. Revision 1 of Order \/ order-42/);
      let details = await http(server, 'GET', 'streams/Order/order-42/details');
      assert.equal(details.body.stream.revision, 1);

      // Expecting revision 0 now fails: 409 with the actual revision.
      await form.getByLabel('Expected revision', { exact: true }).selectOption('number');
      await form.getByLabel('Expected revision number').fill('0');
      await form.getByLabel('Event id (optional)').fill('');
      await form.getByLabel('Payload (JSON)').fill('{"total": 31}');
      await page.getByRole('button', { name: 'Append event' }).click();
      const conflict = page.locator('.notice-error');
      await conflict.waitFor();
      const text = await conflict.textContent();
      assert.match(text, /409 Conflict: wrong expected revision/);
      assert.match(text, /but the stream is at revision 1/);
      assert.match(text, /Request id:/);
      await shot(page, 'append-409');

      // The conflict offers the actual revision; with it the append succeeds.
      await page.getByRole('button', { name: 'Expect revision 1' }).click();
      assert.equal(await form.getByLabel('Expected revision number').inputValue(), '1');
      await page.getByRole('button', { name: 'Append event' }).click();
      await page.locator('.notice-success').waitFor();
      assert.match(await page.locator('.notice-success').textContent(), /Revision 2 of Order \/ order-42/);

      // Re-using the first event's id at another place (after revision 2):
      // 409 duplicate-event. (With "any", the same id alone would be a retry
      // of the first append, answered 200.)
      await form.getByLabel('Expected revision', { exact: true }).selectOption('number');
      await form.getByLabel('Expected revision number').fill('2');
      await form.getByLabel('Event id (optional)').fill('0190a5c2-7d1e-7c3a-9b1e-2f4d6a8c0e11');
      await page.getByRole('button', { name: 'Append event' }).click();
      await page.locator('.notice-error').waitFor();
      assert.match(await page.locator('.notice-error').textContent(), /409 Conflict: duplicate event/);

      // Invalid JSON is caught before sending.
      await form.getByLabel('Event id (optional)').fill('');
      await form.getByLabel('Payload (JSON)').fill('{"total": ');
      await form.getByLabel('Payload (JSON)').press('Control+Enter');
      await page.locator('#append-payload-error').waitFor();
      assert.match(await page.locator('#append-payload-error').textContent(), /Not valid JSON/);
      assert.equal(await form.getByLabel('Payload (JSON)').getAttribute('aria-invalid'), 'true');
      // Metadata must be an object.
      await form.getByLabel('Payload (JSON)').fill('"just a string"');
      await form.getByLabel('Metadata (JSON object, optional)').fill('[1, 2]');
      await page.getByRole('button', { name: 'Append event' }).click();
      await page.locator('#append-metadata-error').waitFor();
      details = await http(server, 'GET', 'streams/Order/order-42/details');
      assert.equal(details.body.stream.revision, 2, 'nothing was sent for invalid input');

      // A string payload is fine.
      await form.getByLabel('Metadata (JSON object, optional)').fill('{"source": "ui"}');
      await page.getByRole('button', { name: 'Append event' }).click();
      await page.locator('.notice-success').waitFor();
      const events = await http(server, 'GET', 'streams/Order/order-42/events?after-revision=2');
      assert.deepEqual(events.body.eventPage.events.map((e) => [e.payload, e.metadata]), [['just a string', { source: 'ui' }]]);
      assert.deepEqual(page.pageErrors, []);
      await page.context().close();
    });
  });

  test('truncate and delete a stream behind a confirmation that names it', async () => {
    await withServer({}, async (server) => {
      const events = Array.from({ length: 6 }, (_, i) => ({ eventType: 'Entry', payload: { n: i + 1, secret: `marker-${i + 1}` } }));
      await appendEvents(server, 'Ledger', 'ledger-1', 'no-stream', events);
      const page = await newPage(browser);
      await page.goto(`${server.uiUrl}#/streams/Ledger/ledger-1`);
      await page.locator('#stream-revision').waitFor();

      // Truncate: the action stays disabled until the stream id is typed.
      await page.locator('#truncate-stream').click();
      const dialog = page.locator('dialog.confirm-dialog');
      await dialog.waitFor();
      assert.match(await dialog.textContent(), /Ledger \/ ledger-1/);
      const go = dialog.getByRole('button', { name: 'Truncate' });
      assert.equal(await go.isDisabled(), true);
      await dialog.getByLabel('First revision to keep').fill('4');
      await dialog.getByLabel(/Type the stream id/).fill('ledger-2');
      assert.equal(await go.isDisabled(), true, 'another id does not confirm');
      await dialog.getByLabel(/Type the stream id/).fill('ledger-1');
      await shot(page, 'truncate-dialog');
      await go.click();
      await page.locator('#stream-first-revision').waitFor();
      assert.equal(await page.locator('#stream-first-revision').textContent(), '4');
      assert.deepEqual(await column(page, 'Revision'), ['4', '5', '6']);
      const details = await http(server, 'GET', 'streams/Ledger/ledger-1/details');
      assert.equal(details.body.stream.firstRevision, 4);

      // Delete: cancelling changes nothing; confirming erases the stream.
      await page.locator('#delete-stream').click();
      await dialog.waitFor();
      await dialog.getByRole('button', { name: 'Cancel' }).click();
      assert.equal((await http(server, 'GET', 'streams/Ledger/ledger-1/details')).status, 200);
      await page.locator('#delete-stream').click();
      await dialog.getByLabel(/Type the stream id/).fill('ledger-1');
      await dialog.getByRole('button', { name: 'Delete stream' }).click();
      await page.getByText('This stream was deleted').waitFor();
      assert.equal((await http(server, 'GET', 'streams/Ledger/ledger-1/details')).status, 410);
      assert.deepEqual(page.pageErrors, []);
      await page.context().close();
    });
  });

  test('server errors show their message and request id', async () => {
    await withServer({}, async (server) => {
      await seedShop(server);
      const page = await newPage(browser);
      await page.goto(`${server.uiUrl}#/types/Order?updated-after=not-a-time`);
      const err = page.locator('.notice-error');
      await err.waitFor();
      assert.match(await err.textContent(), /Error 400 \(bad-request\)/);
      assert.match(await err.textContent(), /Request id: \S+/);

      // The server goes away: a network error, said plainly.
      await page.goto(`${server.uiUrl}#/`);
      await page.locator('table.types-table').waitFor();
      await server.stop();
      await page.getByRole('link', { name: 'Order', exact: true }).click();
      await page.locator('.notice-error', { hasText: 'Network error' }).waitFor();
      assert.match(await page.locator('.notice-error').textContent(), /Cannot reach the event store/);
      await page.context().close();
    });
  });

  test('asks for the API key on 401, keeps it for the tab, asks again when refused', async () => {
    await withServer({ apiKey: 'sesame-123' }, async (server) => {
      await appendEvents(server, 'Order', 'o-1', 'no-stream', [{ eventType: 'OrderPlaced', payload: {} }]);
      const page = await newPage(browser);
      await page.goto(server.uiUrl);
      const dialog = page.getByRole('dialog');
      await dialog.waitFor();
      assert.match(await dialog.textContent(), /requires an API key/);
      await shot(page, 'api-key');

      // A wrong key: refused, asked again.
      await page.getByLabel('API key', { exact: true }).fill('wrong');
      await page.getByLabel('API key', { exact: true }).press('Enter');
      await page.getByText('The server refused the API key').waitFor();
      await page.getByLabel('API key', { exact: true }).fill('sesame-123');
      await page.getByRole('button', { name: 'Use key' }).click();
      await page.locator('table.types-table').waitFor();
      assert.deepEqual(await column(page, 'Stream type'), ['Order']);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('event-store.api-key')), 'sesame-123');

      // Later requests and reloads use the stored key without asking.
      await page.reload();
      await page.locator('table.types-table').waitFor();
      assert.equal(await dialog.count(), 0);
      assert.ok(await page.getByRole('button', { name: 'Change API key' }).isVisible());
      await page.getByRole('link', { name: 'Order', exact: true }).click();
      await page.locator('table.streams-table').waitFor();

      // A key that stops working leads back to the prompt; cancelling says why.
      await page.evaluate(() => sessionStorage.setItem('event-store.api-key', 'revoked'));
      await page.goto(`${server.uiUrl}#/feed`);
      await dialog.waitFor();
      await page.getByRole('button', { name: 'Cancel' }).click();
      await page.locator('.notice-error', { hasText: 'An API key is needed' }).waitFor();
      await page.getByRole('button', { name: 'Enter API key' }).click();
      await page.getByLabel('API key', { exact: true }).fill('sesame-123');
      await page.getByLabel('API key', { exact: true }).press('Enter');
      await page.locator('table.events-table').waitFor();
      assert.deepEqual(page.pageErrors, []);
      await page.context().close();
    });
  });

  test('works behind a proxy under a path prefix (relative URLs only)', async () => {
    await withServer({}, async (server) => {
      await seedSmall(server);
      const proxy = await startPrefixProxy(server, '/some/prefix');
      try {
        const page = await newPage(browser);
        await page.goto(`${proxy.base}/`);
        await page.waitForURL(`${proxy.base}/ui/`);
        await page.locator('table.types-table').waitFor();
        await page.getByRole('link', { name: 'Order', exact: true }).click();
        await page.getByRole('link', { name: 'order-1', exact: true }).click();
        await page.locator('table.events-table').waitFor();
        assert.deepEqual(await column(page, 'Revision'), ['1', '2', '3']);
        await page.goto(`${proxy.base}/ui/#/feed`);
        await page.getByRole('heading', { name: 'Global feed' }).waitFor();
        await page.locator('table.events-table').waitFor();
        assert.equal(await page.locator('table.events-table tbody tr').count(), 5);
        assert.equal(new URL(await page.locator('#api-link').evaluate((a) => a.href)).pathname, '/some/prefix/openapi/');
        assert.deepEqual(proxy.stray, [], 'every request stays under the prefix');
        assert.deepEqual(page.pageErrors, []);
        await page.context().close();
      } finally {
        await proxy.close();
      }
    });
  });

  test('user data is rendered inert (no script runs from event types, ids or payloads)', async () => {
    const attacks = ['<img src=x onerror=window.__xss=1>', '"><script>window.__xss=1</script>', "'><svg onload=window.__xss=1>"];
    await withServer({}, async (server) => {
      await appendEvents(server, 'Xss', 'x-1', 'no-stream', attacks.map((a, i) => ({
        eventType: a,
        payload: { html: a, nested: [a], [a]: a },
        metadata: { note: attacks[(i + 1) % attacks.length] },
      })));
      await appendEvents(server, 'Xss', 'x-2', 'no-stream', [{ eventType: 'Plain', payload: attacks[1] }]);
      const page = await newPage(browser);

      await page.goto(`${server.uiUrl}#/streams/Xss/x-1`);
      await page.locator('table.events-table').waitFor();
      assert.deepEqual(await column(page, 'Event type'), attacks);
      for (const d of await page.locator('details').all()) await d.locator('summary').click();
      const pageText = await page.locator('main').textContent();
      for (const a of attacks) assert.ok(pageText.includes(a), `${a} is shown literally`);
      assert.ok(pageText.includes(JSON.stringify(attacks[0])), 'payload JSON shown literally');
      assert.equal(await page.locator('main img, main script, main svg').count(), 0);

      // The feed renders the same data.
      await page.goto(`${server.uiUrl}#/feed`);
      await page.getByRole('heading', { name: 'Global feed' }).waitFor();
      await page.locator('table.events-table').waitFor();
      assert.deepEqual((await column(page, 'Event type')).slice(0, 3), attacks);
      assert.equal(await page.locator('main img, main script, main svg').count(), 0);

      // Hostile text in the address or in the header search is shown, not run.
      await page.goto(`${server.uiUrl}#/types/${encodeURIComponent(attacks[0])}`);
      await page.getByText('is not a valid stream type').waitFor();
      assert.ok((await page.locator('h1').textContent()).includes(attacks[0]));
      await page.locator('#jump-type').fill('Xss');
      await page.locator('#jump-id').fill(attacks[1]);
      await page.locator('#jump-id').press('Enter');
      await page.getByText('Not a valid stream').waitFor();
      assert.ok((await page.locator('h1').textContent()).includes(attacks[1]));

      // The append form echoes the type in its answer.
      await page.goto(`${server.uiUrl}#/append?type=Xss&id=x-3`);
      await page.locator('#append-form').getByLabel('Event type').fill(attacks[0]);
      await page.locator('#append-form').getByLabel('Payload (JSON)').fill(JSON.stringify({ a: attacks[1] }));
      await page.getByRole('button', { name: 'Append event' }).click();
      await page.locator('.notice-success').waitFor();

      await page.waitForTimeout(300);
      assert.equal(await page.evaluate(() => window.__xss), undefined);
      assert.deepEqual(page.pageErrors, []);
      await page.context().close();
    });
  });
});

// Helpers of the browser tests: start the real server binary on port 0 with a
// fresh data dir, launch Debian's chromium through playwright-core, talk to
// the API over HTTP.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');

/** The server binary: $EVENT_STORE_BIN, else target/debug/event-store. */
export function serverBinary() {
  if (process.env.EVENT_STORE_BIN) return path.resolve(process.env.EVENT_STORE_BIN);
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, 'target');
  return path.join(target, 'debug', 'event-store');
}

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
  '--disable-sync', '--no-first-run', '--disable-quic',
];

/** Where screenshots go: $SCREENSHOT_DIR (run.sh --screenshots: docs/screenshots), else a temp dir. */
export async function screenshotDir() {
  const dir = process.env.SCREENSHOT_DIR
    ? path.resolve(process.env.SCREENSHOT_DIR)
    : path.join(tmpdir(), 'event-store-ui-screenshots');
  await mkdir(dir, { recursive: true });
  return dir;
}

/**
 * Starts `event-store serve --port 0 --data-dir <fresh dir>` and waits for
 * its `listening on http://ADDR:PORT` line. Returns {base, uiUrl, apiKey, stop}.
 */
export async function startServer({ apiKey } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) throw new Error(`server binary not found at ${bin} (set EVENT_STORE_BIN)`);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'event-store-ui-test-'));
  const args = ['serve', '--port', '0', '--data-dir', dataDir];
  if (apiKey) args.push('--api-key', apiKey);
  // The flags alone configure the server: no EVENT_STORE_* setting of the
  // caller's environment (keys, backend, …) leaks in.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EVENT_STORE_')));
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not report its address in 30 s; output:\n${output}`)), 30_000);
    const onData = (chunk) => {
      output += chunk.toString();
      const m = output.match(/listening on (http:\/\/[0-9A-Za-z.:\[\]-]+)/);
      if (m) { clearTimeout(timer); resolve(m[1].replace(/\/$/, '')); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening; output:\n${output}`));
    });
  });
  child.stdout.resume();
  child.stderr.resume();
  const exited = new Promise((r) => child.once('exit', r));
  return {
    base,
    uiUrl: `${base}/ui/`,
    apiKey,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Launches headless chromium. */
export function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (apt-get install -y chromium)`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** A page at laptop width; collects page errors and console errors. */
export async function newPage(browser, { width = 1280, height = 800 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, colorScheme: 'light', reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.pageErrors = [];
  page.on('pageerror', (err) => page.pageErrors.push(err));
  return page;
}

/** Calls the API over HTTP. Returns {status, body}. */
export async function http(server, method, urlPath, body) {
  const headers = { Accept: 'application/json' };
  if (server.apiKey) headers.Authorization = `Bearer ${server.apiKey}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`${server.base}/${urlPath.replace(/^\//, '')}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Appends events with POST /streams/{type}/{id}/events; throws unless 2xx. */
export async function appendEvents(server, type, id, expectedRevision, events) {
  const res = await http(server, 'POST', `streams/${encodeURIComponent(type)}/${encodeURIComponent(id)}/events`, { expectedRevision, events });
  if (res.status !== 201 && res.status !== 200) {
    throw new Error(`append to ${type}/${id} failed: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

/**
 * A reverse proxy that serves `server` under `prefix` (e.g. `/foo`), as a
 * proxy or a Lambda Function URL with a path would. Requests outside the
 * prefix are answered 404 and recorded in `stray`.
 */
export async function startPrefixProxy(server, prefix) {
  const { createServer, request } = await import('node:http');
  const target = new URL(server.base);
  const stray = [];
  const proxy = createServer((req, res) => {
    if (!req.url.startsWith(`${prefix}/`)) {
      stray.push(req.url);
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('outside the prefix');
      return;
    }
    const upstream = request({
      host: target.hostname, port: target.port, method: req.method,
      path: req.url.slice(prefix.length), headers: { ...req.headers, host: target.host },
    }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (err) => { res.writeHead(502); res.end(String(err)); });
    req.pipe(upstream);
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${proxy.address().port}${prefix}`,
    stray,
    close: () => new Promise((r) => { proxy.closeAllConnections?.(); proxy.close(r); }),
  };
}

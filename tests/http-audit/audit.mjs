#!/usr/bin/env node
// GraphQL-over-HTTP conformance audit for the Rust server.
//
// Usage: node audit.mjs <url>        e.g. node audit.mjs http://127.0.0.1:8080/graphql
//
// Runs every server audit shipped by the `graphql-http` npm package
// (serverAudits from graphql-http/lib/audits/server.*), one after another,
// using Node's built-in fetch. See AUDITS.md for what each audit sends/expects.
//
// Output: one line per audit (PASS / FAIL / WARN / NOTICE), with details for
// non-passing audits, then a final line "N passed, M failed".
//   N = audits whose status is "ok"
//   M = MUST failures ("error") + SHOULD warnings ("warn")
//   MAY notices ("notice") are reported but counted in neither N nor M.
// Exit codes: 0 = no MUST failure and no SHOULD warning
//             1 = at least one MUST failure or SHOULD warning
//             2 = bad usage, or the URL is unreachable (connection-level error)
//
// If an audit function throws (graphql-http treats that as "fatal", e.g. the
// response body is JSON but not an object, so `'errors' in body` throws), the
// audit is reported at its requirement level (MUST->FAIL, SHOULD->WARN,
// MAY->NOTICE) with reason "audit threw: ...". A network error in the middle
// of the run (server crashed / connection reset / timeout) is always FAIL.

import { serverAudits } from 'graphql-http';

const DETAIL_LIMIT = 500; // max characters for body / request body in details
const REQUEST_TIMEOUT_MS = 30_000;

function usage(msg) {
  if (msg) console.error(`error: ${msg}`);
  console.error('usage: node audit.mjs <url>   (e.g. http://127.0.0.1:8080/graphql)');
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length !== 1 || args[0] === '-h' || args[0] === '--help') usage();

let url;
try {
  url = new URL(args[0]);
} catch {
  usage(`invalid URL: ${args[0]}`);
}
if (url.protocol !== 'http:' && url.protocol !== 'https:') {
  usage(`URL must be http:// or https://, got ${url.protocol}`);
}
const urlString = url.toString();

function truncate(s, n = DETAIL_LIMIT) {
  s = String(s);
  return s.length > n ? `${s.slice(0, n)}... [truncated, ${s.length} chars total]` : s;
}

function describeError(err) {
  if (!err) return String(err);
  let msg = err.name && err.message ? `${err.name}: ${err.message}` : String(err);
  // undici wraps the real cause (ECONNREFUSED, ECONNRESET, ...) in err.cause
  let c = err.cause;
  while (c) {
    msg += ` (cause: ${c.code ? `${c.code} ` : ''}${c.message ?? String(c)})`;
    c = c.cause;
  }
  return msg;
}

function isNetworkError(err) {
  // Node/undici fetch rejects with TypeError('fetch failed') for connection
  // problems; AbortSignal.timeout rejects with TimeoutError/AbortError.
  return (
    err instanceof Error &&
    ((err.name === 'TypeError' && /fetch failed/i.test(err.message)) ||
      err.name === 'TimeoutError' ||
      err.name === 'AbortError')
  );
}

// --- reachability check ----------------------------------------------------
try {
  const res = await fetch(urlString, {
    method: 'GET',
    signal: AbortSignal.timeout(10_000),
  });
  // any HTTP response at all means the server is reachable
  await res.arrayBuffer().catch(() => {});
} catch (err) {
  console.error(`error: cannot reach ${urlString}: ${describeError(err)}`);
  console.error('Is the server running and listening on that address?');
  process.exit(2);
}

// --- fetch wrapper: adds a timeout and records the request for reporting ----
let lastRequests = [];
let lastResponse; // clone of the last response, used when an audit threw
async function auditFetch(input, init = {}) {
  const headers = new Headers(init.headers ?? {});
  lastRequests.push({
    method: init.method ?? 'GET',
    url: String(input),
    contentType: headers.get('content-type'),
    accept: headers.get('accept'),
    body: init.body === undefined ? undefined : String(init.body),
  });
  const res = await fetch(input, {
    ...init,
    signal: init.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  lastResponse = res.clone();
  return res;
}

function describeRequest(r) {
  const parts = [`${r.method} ${r.url}`];
  // Node fetch fills in `accept: */*` when none is given, and
  // `content-type: text/plain;charset=UTF-8` for a string body without one.
  parts.push(
    `content-type=${r.contentType ?? (r.body !== undefined ? '(none given; fetch sends text/plain;charset=UTF-8)' : '(none)')}`,
  );
  parts.push(`accept=${r.accept ?? '(none given; fetch sends */*)'}`);
  parts.push(`body=${r.body === undefined ? '(none)' : truncate(JSON.stringify(r.body), 200)}`);
  return parts.join('  ');
}

async function describeResponse(res) {
  const lines = [];
  if (!res || typeof res !== 'object') {
    lines.push('response: (none)');
    return lines;
  }
  const ct = res.headers?.get?.('content-type');
  lines.push(`response status: ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  lines.push(`response content-type: ${ct ?? '(missing)'}`);
  let body;
  if (res.bodyUsed) {
    body = '(body already consumed by the audit)';
  } else {
    try {
      body = JSON.stringify(await res.text());
    } catch (err) {
      body = `(could not read body: ${describeError(err)})`;
    }
  }
  lines.push(`response body: ${truncate(body)}`);
  return lines;
}

// --- run ------------------------------------------------------------------
const LABEL = { ok: 'PASS', error: 'FAIL', warn: 'WARN', notice: 'NOTICE' };
const audits = serverAudits({ url: urlString, fetchFn: auditFetch });
const counts = { ok: 0, error: 0, warn: 0, notice: 0 };

console.log(`graphql-http server audits against ${urlString} (${audits.length} audits)`);

for (const audit of audits) {
  lastRequests = [];
  lastResponse = undefined;
  let result;
  try {
    result = await audit.fn();
  } catch (err) {
    const level = audit.name.split(' ')[0];
    result = {
      id: audit.id,
      name: audit.name,
      status: isNetworkError(err)
        ? 'error'
        : level === 'MUST'
          ? 'error'
          : level === 'SHOULD'
            ? 'warn'
            : 'notice',
      reason: `audit threw: ${describeError(err)}`,
      response: lastResponse,
    };
  }
  counts[result.status] = (counts[result.status] ?? 0) + 1;
  const label = LABEL[result.status] ?? String(result.status).toUpperCase();
  console.log(`${label.padEnd(6)} ${audit.id}  ${audit.name}`);
  if (result.status !== 'ok') {
    console.log(`         reason: ${result.reason}`);
    for (const r of lastRequests) console.log(`         request: ${describeRequest(r)}`);
    if (result.response) {
      for (const line of await describeResponse(result.response)) {
        console.log(`         ${line}`);
      }
    }
  }
}

const failed = counts.error + counts.warn;
console.log(
  `${audits.length} audits: ${counts.ok} ok, ${counts.error} MUST failures, ` +
    `${counts.warn} SHOULD warnings, ${counts.notice} MAY notices`,
);
console.log(`${counts.ok} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;

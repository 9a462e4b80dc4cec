// graphql-transport-ws conformance of a CloudBase server, with the graphql-ws client a frontend
// uses. Usage: node check.mjs ws://127.0.0.1:PORT/graphql/ws ACCESS_TOKEN
// Prints one line per check and a final "N passed, M failed"; exits 1 on any failure.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token] = process.argv.slice(2);
if (!url || !token || !/^ws:\/\/(127\.0\.0\.1|localhost):/.test(url)) {
  console.error('usage: node check.mjs ws://127.0.0.1:PORT/graphql/ws ACCESS_TOKEN (loopback only)');
  process.exit(2);
}

let pongs = 0;
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  keepAlive: 100,
  lazy: false,
  retryAttempts: 0,
  on: { pong: () => { pongs += 1; } },
});

function run(query) {
  return new Promise((resolve) => {
    const items = [];
    client.subscribe({ query }, {
      next: (item) => items.push(item),
      error: (error) => resolve({ items, error }),
      complete: () => resolve({ items, error: null }),
    });
  });
}

const results = [];
function check(name, ok, detail) {
  results.push(ok);
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${ok ? '' : `: ${detail}`}`);
}

const timeout = setTimeout(() => { console.error('timed out'); process.exit(1); }, 20000);

const streamed = await run('subscription { chatStream(input: { message: "conformance" }) { delta done aiCall { status } } }');
const last = streamed.items.at(-1)?.data?.chatStream;
check('subscribe, receive and complete', streamed.error === null && streamed.items.length > 1 && last?.done === true && last?.aiCall?.status === 'SUCCEEDED',
  JSON.stringify(streamed));
const text = streamed.items.map((i) => i.data?.chatStream?.delta ?? '').join('');
check('the deltas form the reply', text === 'Mock reply: conformance', text);

const invalid = await run('subscription { noSuchField }');
check('an invalid subscription gets the protocol error message', Array.isArray(invalid.error) && invalid.error.length > 0 && invalid.items.length === 0,
  JSON.stringify(invalid));

await new Promise((r) => setTimeout(r, 500));
check('ping/pong keep-alive', pongs > 0, `pongs: ${pongs}`);

clearTimeout(timeout);
await client.dispose();
const failed = results.filter((ok) => !ok).length;
console.log(`${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

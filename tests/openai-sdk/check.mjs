// The OpenAI-compatible door (/v1) checked with the official `openai` npm SDK, and every raw body
// validated against OpenAI's own OpenAPI schemas (openai-chat-subset.yaml).
// Usage: node check.mjs '{"baseURL": "http://127.0.0.1:PORT/v1", "key": "cb-...", "poorKey": "cb-...",
//   "badKey": "cb-...", "models": ["mock/mock-fast", "local/..."], "slowModel": "mock/mock-echo"}'
// Prints `ok - <name>` / `not ok - <name>: <reason>` per check, a `RESULT <json>` line with the
// call ids and usages (for the Rust test to check the records), and finally `N passed, M failed`.
// Exits 1 on any failure.
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import OpenAI from 'openai';
import Ajv2020 from 'ajv/dist/2020.js';
import YAML from 'yaml';

const SPEC = fileURLToPath(new URL('./openai-chat-subset.yaml', import.meta.url));
const CALL_ID = 'x-cloudbase-call-id';
const COST = 'x-cloudbase-cost-micros';

// ---------------------------------------------------------------------------------------------
// The spec: OpenAPI 3.1 schemas, with a few OpenAPI 3.0 leftovers, turned into JSON Schema 2020-12.

/** Keywords whose value maps names to schemas (the names are not keywords). */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'dependentSchemas']);
/** Keywords whose value is data, copied as is. */
const DATA = new Set(['enum', 'const', 'default', 'example', 'examples']);

/** Drops `x-*` extensions and turns OpenAPI 3.0's `nullable: true` into JSON Schema. */
function toJsonSchema(node) {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== 'object') return node;
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (key.startsWith('x-') || key === 'nullable') continue;
    if (DATA.has(key)) out[key] = value;
    else if (SCHEMA_MAPS.has(key)) out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJsonSchema(v)]));
    else out[key] = toJsonSchema(value);
  }
  return node.nullable === true ? allowNull(out) : out;
}

function allowNull(schema) {
  if (typeof schema.type === 'string') {
    const nullable = { ...schema, type: [schema.type, 'null'] };
    if (nullable.enum) nullable.enum = [...nullable.enum, null];
    return nullable;
  }
  return { anyOf: [schema, { type: 'null' }] };
}

/**
 * Compiles the spec's components/schemas; returns `validate(name, value)`, which gives null when
 * `value` is valid against schema `name`, else a short description of the errors.
 */
export function compileSpec(path = SPEC) {
  const spec = YAML.parse(readFileSync(path, 'utf8'));
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  // Under one id, so `$ref: '#/components/schemas/X'` resolves inside the document.
  ajv.addSchema({ $id: 'openai', components: { schemas: toJsonSchema(spec.components.schemas) } });
  const compiled = new Map();
  return (name, value) => {
    if (!compiled.has(name)) compiled.set(name, ajv.compile({ $ref: `openai#/components/schemas/${name}` }));
    const validate = compiled.get(name);
    if (validate(value)) return null;
    return validate.errors.slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
  };
}

// ---------------------------------------------------------------------------------------------
// Reporting.

const results = [];

class Failure extends Error {}

function expect(condition, reason) {
  if (!condition) throw new Failure(reason);
}

/** Runs one check; prints its line; returns what `fn` returned, or undefined when it failed. */
async function attempt(name, fn) {
  try {
    const value = await fn();
    results.push(true);
    console.log(`ok - ${name}`);
    return value;
  } catch (e) {
    results.push(false);
    const reason = e instanceof Failure ? e.message : `${e?.constructor?.name}: ${e?.message}`;
    console.log(`not ok - ${name}: ${reason.replace(/\s+/g, ' ')}`);
    return undefined;
  }
}

/** Prints the last line and exits. */
function summarise() {
  const failed = results.filter((ok) => !ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

// ---------------------------------------------------------------------------------------------
// The checks.

const isMock = (model) => model.startsWith('mock/');
const userMessage = (content) => [{ role: 'user', content }];
const json = (value) => JSON.stringify(value);

/** The usage as the RESULT line reports it. */
function usageOf(usage) {
  return {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    cached_tokens: usage.prompt_tokens_details?.cached_tokens ?? null,
  };
}

function expectValid(validate, schema, body, what = 'body') {
  const errors = validate(schema, body);
  expect(errors === null, `${what} is not a valid ${schema}: ${errors}`);
}

function expectUsage(usage) {
  expect(usage && [usage.prompt_tokens, usage.completion_tokens, usage.total_tokens].every(Number.isInteger),
    `usage is not three integers: ${json(usage)}`);
  expect(usage.total_tokens === usage.prompt_tokens + usage.completion_tokens, `total_tokens is not the sum: ${json(usage)}`);
  expect(Number.isInteger(usage.prompt_tokens_details?.cached_tokens), `no prompt_tokens_details.cached_tokens: ${json(usage)}`);
}

async function listModels(client, validate, models) {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  const missing = models.filter((m) => !ids.includes(m));
  expect(missing.length === 0, `missing ${json(missing)} from ${json(ids)}`);
  const raw = await (await client.models.list().asResponse()).json();
  expectValid(validate, 'ListModelsResponse', raw);
}

/**
 * A plain call. Fills `seen` with `{content, usage, id}` as soon as it has them, so the streamed
 * call can be compared even when this check fails. `data` is the raw JSON body (the SDK only parses it).
 */
async function plainCall(client, validate, model, seen) {
  const content = `hello ${model}`;
  const { data, response } = await client.chat.completions.create({ model, messages: userMessage(content) }).withResponse();
  const id = response.headers.get(CALL_ID);
  Object.assign(seen, { content: data.choices?.[0]?.message?.content, usage: data.usage, id });
  expectValid(validate, 'CreateChatCompletionResponse', data);
  expect(data.object === 'chat.completion' && data.model === model, `object/model: ${data.object}/${data.model}`);
  expect(data.choices.length === 1, `${data.choices.length} choices`);
  const { message, finish_reason: finish } = data.choices[0];
  expect(message.role === 'assistant' && message.refusal === null, `message: ${json(message)}`);
  expect(finish === 'stop' || !isMock(model), `finish_reason ${finish}`);
  const reply = message.content;
  if (isMock(model)) expect(reply === `Mock reply: ${content}`, `content ${json(reply)}`);
  else expect(typeof reply === 'string' && reply.length > 0, `content ${json(reply)}`);
  expectUsage(data.usage);
  expect(id, `no ${CALL_ID} header`);
  const cost = response.headers.get(COST);
  expect(/^\d+$/.test(cost ?? ''), `${COST} is ${json(cost)}`);
}

/** Reads a whole stream; every chunk is the raw JSON of one `data:` line. */
async function readStream(client, body) {
  const { data: stream, response } = await client.chat.completions.create({ ...body, stream: true }).withResponse();
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return { chunks, response };
}

const textOf = (chunks) => chunks.flatMap((c) => c.choices).map((c) => c.delta?.content ?? '').join('');

/** A streamed call with include_usage, compared with the plain call (exactly for mock models). */
async function streamCall(client, validate, model, plain) {
  const content = `hello ${model}`;
  const { chunks, response } = await readStream(client, {
    model, messages: userMessage(content), stream_options: { include_usage: true },
  });
  expect((response.headers.get('content-type') ?? '').startsWith('text/event-stream'), 'not text/event-stream');
  const id = response.headers.get(CALL_ID);
  expect(id, `no ${CALL_ID} header`);
  expect(chunks.length >= 2, `${chunks.length} chunks`);
  chunks.forEach((c, i) => expectValid(validate, 'CreateChatCompletionStreamResponse', c, `chunk ${i}`));
  expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === model && c.id === chunks[0].id),
    'chunks differ in object, model or id');
  const last = chunks.at(-1);
  expect(last.choices.length === 0 && last.usage, `last chunk: ${json(last)}`);
  expect(chunks.slice(0, -1).every((c) => c.usage == null), 'usage before the last chunk');
  expect(chunks.some((c) => c.choices.some((ch) => ch.finish_reason)), 'no finish_reason');
  expectUsage(last.usage);
  const text = textOf(chunks);
  expect(plain.usage, 'the plain call gave nothing to compare with');
  if (isMock(model)) {
    expect(text === plain.content, `deltas ${json(text)} != plain ${json(plain.content)}`);
    expect(json(usageOf(last.usage)) === json(usageOf(plain.usage)) && last.usage.total_tokens === plain.usage.total_tokens,
      `usage ${json(last.usage)} != plain ${json(plain.usage)}`);
  } else {
    expect(text.length > 0, 'empty deltas');
    expect(last.usage.prompt_tokens === plain.usage.prompt_tokens, `prompt_tokens ${last.usage.prompt_tokens} != plain ${plain.usage.prompt_tokens}`);
  }
  return { usage: last.usage, id };
}

async function streamWithoutUsage(client, model) {
  const { chunks } = await readStream(client, { model, messages: userMessage('no usage please') });
  expect(chunks.length > 0, 'no chunks');
  expect(chunks.every((c) => c.usage == null && c.choices.length > 0), 'a usage chunk was sent');
}

/** Expects `call` to throw `Class` with `status`; checks the error body's shape; returns the error. */
async function expectError(validate, call, Class, status) {
  try {
    await call();
  } catch (e) {
    expect(e instanceof Class && e.status === status, `got ${e?.constructor?.name} ${e?.status}: ${e?.message}`);
    expectValid(validate, 'ErrorResponse', { error: e.error }, 'error body');
    return e;
  }
  throw new Failure('no error');
}

/** Starts a long stream on `model`, reads 3 chunks, aborts; returns the call id. */
async function cancelMidway(client, model) {
  const words = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
  const { data: stream, response } = await client.chat.completions
    .create({ model, messages: userMessage(words), stream: true }).withResponse();
  const id = response.headers.get(CALL_ID);
  let read = 0;
  let finished = false;
  for await (const chunk of stream) {
    finished ||= chunk.choices.some((c) => c.finish_reason);
    read += 1;
    if (read === 3) break;
  }
  stream.controller.abort();
  expect(read === 3 && !finished, `read ${read} chunks, finished: ${finished}`);
  expect(id, `no ${CALL_ID} header`);
  return id;
}

function parseConfig(arg) {
  const config = JSON.parse(arg ?? 'null');
  for (const field of ['baseURL', 'key', 'poorKey', 'badKey', 'slowModel']) {
    if (typeof config?.[field] !== 'string') throw new Error(`config.${field} is missing`);
  }
  if (!Array.isArray(config.models) || config.models.length === 0) throw new Error('config.models is missing');
  return config;
}

async function main() {
  let config;
  try {
    config = parseConfig(process.argv[2]);
  } catch (e) {
    console.error(`${e.message}\nusage: node check.mjs '{"baseURL","key","poorKey","badKey","models":[...],"slowModel"}'`);
    process.exit(2);
  }
  const watchdog = setTimeout(() => {
    results.push(false);
    console.log('not ok - the checks finished within 120 s');
    summarise();
  }, 120_000);
  const { baseURL, models } = config;
  const connect = (apiKey) => new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 30_000 });
  const client = connect(config.key);
  const validate = compileSpec();
  const calls = [];
  const first = models[0];
  const chat = (c, model, extra = {}) => () => c.chat.completions.create({ model, messages: userMessage('hi'), ...extra });

  await attempt('models.list() lists every configured model and its body is a ListModelsResponse', () => listModels(client, validate, models));
  for (const model of models) {
    const plain = {};
    await attempt(`plain call on ${model}`, () => plainCall(client, validate, model, plain));
    if (plain.id && plain.usage) calls.push({ model, mode: 'plain', id: plain.id, usage: usageOf(plain.usage) });
    const streamed = await attempt(`streamed call on ${model} with include_usage`, () => streamCall(client, validate, model, plain));
    if (streamed) calls.push({ model, mode: 'stream', id: streamed.id, usage: usageOf(streamed.usage) });
  }
  await attempt(`a stream on ${first} without include_usage has no usage chunk`, () => streamWithoutUsage(client, first));
  await attempt('a bad key gets AuthenticationError (401)',
    () => expectError(validate, chat(connect(config.badKey), first), OpenAI.AuthenticationError, 401));
  for (const stream of [false, true]) {
    await attempt(`a key over its budget gets RateLimitError insufficient_quota (429)${stream ? ', streamed' : ''}`, async () => {
      const e = await expectError(validate, chat(connect(config.poorKey), first, { stream }), OpenAI.RateLimitError, 429);
      expect(e.code === 'insufficient_quota' && e.type === 'insufficient_quota', `code ${e.code}, type ${e.type}`);
    });
  }
  await attempt('unknown model nope/nope gets NotFoundError (404)',
    () => expectError(validate, chat(client, 'nope/nope'), OpenAI.NotFoundError, 404));
  await attempt('n: 2 gets BadRequestError (400)',
    () => expectError(validate, chat(client, first, { n: 2 }), OpenAI.BadRequestError, 400));
  const cancelled = await attempt(`a stream on ${config.slowModel} aborted after 3 chunks`, () => cancelMidway(client, config.slowModel));

  console.log(`RESULT ${json({ calls, cancelled: cancelled ?? null })}`);
  clearTimeout(watchdog);
  summarise();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();

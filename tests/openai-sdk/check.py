"""The OpenAI-compatible door (/v1) checked with the official `openai` Python SDK.

Usage: .venv/bin/python check.py '{"baseURL": "http://127.0.0.1:PORT/v1", "key": "cb-...",
  "poorKey": "cb-...", "badKey": "cb-...", "models": ["mock/mock-fast", "local/..."],
  "slowModel": "mock/mock-echo"}'

The same checks as check.mjs except validation against the OpenAPI spec (the raw bodies get a
few shape checks instead). Prints `ok - <name>` / `not ok - <name>: <reason>` per check, a
`RESULT <json>` line with the call ids and usages, and finally `N passed, M failed`. Exits 1 on
any failure. Standard library and `openai` only.
"""

import json
import re
import sys

import openai
from openai import OpenAI

CALL_ID = "x-cloudbase-call-id"
COST = "x-cloudbase-cost-micros"
ERROR_FIELDS = {"message", "type", "param", "code"}


# --- Reporting ---------------------------------------------------------------------------------


class Failure(Exception):
    """A check's expectation that did not hold."""


def expect(condition, reason):
    if not condition:
        raise Failure(reason)


RESULTS = []


def attempt(name, fn):
    """Runs one check; prints its line; returns what `fn` returned, or None when it failed."""
    try:
        value = fn()
    except Exception as e:  # noqa: BLE001 - every error is a failed check
        RESULTS.append(False)
        reason = str(e) if isinstance(e, Failure) else f"{type(e).__name__}: {e}"
        print(f"not ok - {name}: {' '.join(reason.split())}", flush=True)
        return None
    RESULTS.append(True)
    print(f"ok - {name}", flush=True)
    return value


# --- The checks --------------------------------------------------------------------------------


def is_mock(model):
    return model.startswith("mock/")


def user_message(content):
    return [{"role": "user", "content": content}]


def usage_of(usage):
    """The usage as the RESULT line reports it (from a dict or an SDK object)."""
    if not isinstance(usage, dict):
        usage = usage.model_dump()
    details = usage.get("prompt_tokens_details") or {}
    return {
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "cached_tokens": details.get("cached_tokens"),
    }


def expect_usage(usage):
    """`usage` is a raw dict: three integers that add up, and prompt_tokens_details.cached_tokens."""
    counts = [usage.get(k) if isinstance(usage, dict) else None for k in ("prompt_tokens", "completion_tokens", "total_tokens")]
    expect(all(isinstance(n, int) for n in counts), f"usage is not three integers: {usage}")
    expect(counts[2] == counts[0] + counts[1], f"total_tokens is not the sum: {usage}")
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    expect(isinstance(cached, int), f"no prompt_tokens_details.cached_tokens: {usage}")


def list_models(client, models):
    ids = [m.id for m in client.models.list().data]
    missing = [m for m in models if m not in ids]
    expect(not missing, f"missing {missing} from {ids}")


def expect_completion_shape(body, model):
    """A few of the spec's requirements on a raw chat.completion body."""
    expect(body.get("object") == "chat.completion" and body.get("model") == model, f"object/model: {body.get('object')}/{body.get('model')}")
    expect(isinstance(body.get("id"), str) and isinstance(body.get("created"), int), "id or created missing")
    expect(len(body["choices"]) == 1, f"{len(body['choices'])} choices")
    choice = body["choices"][0]
    expect("logprobs" in choice and choice["logprobs"] is None, f"logprobs: {choice.get('logprobs', 'missing')}")
    message = choice["message"]
    expect(message.get("role") == "assistant", f"role {message.get('role')}")
    expect("refusal" in message and message["refusal"] is None, f"refusal: {message.get('refusal', 'missing')}")


def plain_call(client, model, seen):
    """A plain call. Fills `seen` with content, usage (the raw dict) and id as soon as it has them,
    so the streamed call can be compared even when this check fails."""
    content = f"hello {model}"
    raw = client.chat.completions.with_raw_response.create(model=model, messages=user_message(content))
    completion = raw.parse()
    body = json.loads(raw.http_response.text)
    call_id = raw.headers.get(CALL_ID)
    seen.update(content=completion.choices[0].message.content, usage=body.get("usage"), id=call_id)
    expect_completion_shape(body, model)
    reply = completion.choices[0].message.content
    finish = completion.choices[0].finish_reason
    if is_mock(model):
        expect(reply == f"Mock reply: {content}", f"content {reply!r}")
        expect(finish == "stop", f"finish_reason {finish}")
    else:
        expect(isinstance(reply, str) and reply, f"content {reply!r}")
    expect_usage(body.get("usage"))
    expect(call_id, f"no {CALL_ID} header")
    cost = raw.headers.get(COST)
    expect(re.fullmatch(r"\d+", cost or ""), f"{COST} is {cost!r}")


def read_stream(client, **body):
    """Reads a whole stream; returns (chunks, headers)."""
    raw = client.chat.completions.with_raw_response.create(stream=True, **body)
    with raw.parse() as stream:
        return list(stream), raw.headers


def text_of(chunks):
    return "".join(choice.delta.content or "" for chunk in chunks for choice in chunk.choices)


def stream_call(client, model, plain):
    """A streamed call with include_usage, compared with the plain call (exactly for mock models)."""
    content = f"hello {model}"
    chunks, headers = read_stream(client, model=model, messages=user_message(content), stream_options={"include_usage": True})
    expect(headers.get("content-type", "").startswith("text/event-stream"), "not text/event-stream")
    call_id = headers.get(CALL_ID)
    expect(call_id, f"no {CALL_ID} header")
    expect(len(chunks) >= 2, f"{len(chunks)} chunks")
    expect(all(c.object == "chat.completion.chunk" and c.model == model and c.id == chunks[0].id for c in chunks),
           "chunks differ in object, model or id")
    last = chunks[-1]
    expect(last.choices == [] and last.usage is not None, f"last chunk: {last}")
    expect(all(c.usage is None for c in chunks[:-1]), "usage before the last chunk")
    expect(any(ch.finish_reason for c in chunks for ch in c.choices), "no finish_reason")
    usage = last.usage.model_dump()
    expect_usage(usage)
    text = text_of(chunks)
    expect(plain.get("usage"), "the plain call gave nothing to compare with")
    if is_mock(model):
        expect(text == plain["content"], f"deltas {text!r} != plain {plain['content']!r}")
        same = usage_of(usage) == usage_of(plain["usage"]) and usage["total_tokens"] == plain["usage"]["total_tokens"]
        expect(same, f"usage {usage} != plain {plain['usage']}")
    else:
        expect(text, "empty deltas")
        expect(usage["prompt_tokens"] == plain["usage"]["prompt_tokens"], f"prompt_tokens {usage['prompt_tokens']} != plain {plain['usage']['prompt_tokens']}")
    return {"usage": usage, "id": call_id}


def stream_without_usage(client, model):
    chunks, _ = read_stream(client, model=model, messages=user_message("no usage please"))
    expect(chunks, "no chunks")
    expect(all(c.usage is None and c.choices for c in chunks), "a usage chunk was sent")


def expect_error(call, cls, status):
    """Expects `call` to raise `cls` with `status`; checks the error body's fields; returns the error."""
    try:
        call()
    except openai.APIError as e:
        expect(isinstance(e, cls) and getattr(e, "status_code", None) == status,
               f"got {type(e).__name__} {getattr(e, 'status_code', None)}: {e}")
        expect(isinstance(e.body, dict) and ERROR_FIELDS <= set(e.body), f"error body {e.body}")
        return e
    raise Failure("no error")


def cancel_midway(client, model):
    """Starts a long stream on `model`, reads 3 chunks, closes it; returns the call id."""
    words = " ".join(f"word{i}" for i in range(200))
    raw = client.chat.completions.with_raw_response.create(model=model, messages=user_message(words), stream=True)
    call_id = raw.headers.get(CALL_ID)
    stream = raw.parse()
    read, finished = 0, False
    for chunk in stream:
        finished = finished or any(c.finish_reason for c in chunk.choices)
        read += 1
        if read == 3:
            break
    stream.close()
    expect(read == 3 and not finished, f"read {read} chunks, finished: {finished}")
    expect(call_id, f"no {CALL_ID} header")
    return call_id


def parse_config(arg):
    config = json.loads(arg)
    for field in ("baseURL", "key", "poorKey", "badKey", "slowModel"):
        if not isinstance(config.get(field), str):
            raise ValueError(f"config.{field} is missing")
    if not isinstance(config.get("models"), list) or not config["models"]:
        raise ValueError("config.models is missing")
    return config


def main():
    try:
        config = parse_config(sys.argv[1] if len(sys.argv) > 1 else "null")
    except (ValueError, AttributeError) as e:
        print(f'{e}\nusage: python check.py \'{{"baseURL","key","poorKey","badKey","models":[...],"slowModel"}}\'', file=sys.stderr)
        sys.exit(2)

    def connect(key):
        return OpenAI(base_url=config["baseURL"], api_key=key, max_retries=0, timeout=30)

    client, models = connect(config["key"]), config["models"]
    first, calls = models[0], []

    def chat(c, model, **extra):
        return lambda: c.chat.completions.create(model=model, messages=user_message("hi"), **extra)

    attempt("models.list() lists every configured model", lambda: list_models(client, models))
    for model in models:
        plain = {}
        attempt(f"plain call on {model}", lambda: plain_call(client, model, plain))
        if plain.get("id") and plain.get("usage"):
            calls.append({"model": model, "mode": "plain", "id": plain["id"], "usage": usage_of(plain["usage"])})
        streamed = attempt(f"streamed call on {model} with include_usage", lambda: stream_call(client, model, plain))
        if streamed:
            calls.append({"model": model, "mode": "stream", "id": streamed["id"], "usage": usage_of(streamed["usage"])})
    attempt(f"a stream on {first} without include_usage has no usage chunk", lambda: stream_without_usage(client, first))
    attempt("a bad key gets AuthenticationError (401)",
            lambda: expect_error(chat(connect(config["badKey"]), first), openai.AuthenticationError, 401))
    for stream in (False, True):
        def over_budget():
            e = expect_error(chat(connect(config["poorKey"]), first, stream=stream), openai.RateLimitError, 429)
            expect(e.code == "insufficient_quota" and e.type == "insufficient_quota", f"code {e.code}, type {e.type}")
        attempt(f"a key over its budget gets RateLimitError insufficient_quota (429){', streamed' if stream else ''}", over_budget)
    attempt("unknown model nope/nope gets NotFoundError (404)",
            lambda: expect_error(chat(client, "nope/nope"), openai.NotFoundError, 404))
    attempt("n: 2 gets BadRequestError (400)",
            lambda: expect_error(chat(client, first, n=2), openai.BadRequestError, 400))
    cancelled = attempt(f"a stream on {config['slowModel']} closed after 3 chunks", lambda: cancel_midway(client, config["slowModel"]))

    print(f"RESULT {json.dumps({'calls': calls, 'cancelled': cancelled})}")
    failed = RESULTS.count(False)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

//! The host's side of sans-IO plugins: sending their `HttpRequest`s with reqwest (timeouts,
//! secrets substituted at the last moment) and reading responses whole or as server-sent events.
//! Requests to addresses users gave go through [`user_http::client`]. Errors never carry URLs: webhook
//! URLs often embed access tokens.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use cloudbase_plugin_api::{HttpRequest, HttpResponse, SseEvent};
use cloudbase_schema::Error;
use futures_util::stream::{BoxStream, StreamExt};

use super::user_http;
use crate::config::UpstreamTimeouts;

/// A client builder with the instance's connect timeout and the server's user agent.
pub fn builder(timeouts: &UpstreamTimeouts) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(timeouts.connect_ms))
        .user_agent(concat!("cloudbase-ai/", env!("CARGO_PKG_VERSION")))
}

/// A client with the instance's connect timeout. It follows no redirect: a provider's 3xx is
/// answered to the plugin like any other failure status (a failed call naming the status), so a
/// request, its prompt and its key, goes to the configured address only, and a moved endpoint
/// shows as the wrong `base_url` it is rather than as a call quietly re-sent elsewhere (or, after
/// a 301 or 302, re-sent as a `GET`).
pub fn client(timeouts: &UpstreamTimeouts) -> Result<reqwest::Client, String> {
    builder(timeouts)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

/// Replaces every `${secret:NAME}` in `value` with the secret.
fn substitute(value: &str, secrets: &BTreeMap<String, String>) -> Result<String, Error> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${secret:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${secret:".len()..];
        let Some(end) = after.find('}') else {
            return Err(Error::Plugin(
                "unterminated ${secret:…} placeholder in a header".into(),
            ));
        };
        let name = &after[..end];
        let secret = secrets.get(name).ok_or_else(|| {
            Error::Upstream(format!("secret `{name}` is not set for this instance"))
        })?;
        out.push_str(secret);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A request that got no usable response, and whether trying again could help.
#[derive(Debug)]
pub struct Failure {
    /// What to report.
    pub error: Error,
    /// A connect failure or a timeout before the first byte: worth another attempt.
    pub retryable: bool,
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        f.error
    }
}

fn not_retryable(error: Error) -> Failure {
    Failure {
        error,
        retryable: false,
    }
}

fn request_error(e: &reqwest::Error, what: &str) -> Error {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<user_http::InternalAddress>() {
            return Error::Upstream(format!("{what} not reached: {refused}"));
        }
        source = cause.source();
    }
    if e.is_timeout() {
        Error::Timeout(format!("{what} timed out"))
    } else if e.is_connect() {
        Error::Upstream(format!("cannot connect to {what}"))
    } else {
        // `without_url` keeps tokens embedded in URLs out of messages and logs.
        Error::Upstream(format!("{what} request failed: {}", strip_url(e)))
    }
}

fn strip_url(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    if let Some(url) = e.url() {
        message = message.replace(url.as_str(), "<url>");
    }
    message
}

/// The last URL a plugin built, parsed. A provider's plugin builds the same endpoint for every
/// call, and parsing it again was 1% of a `/v1` call's instructions (`bench/instructions.sh`).
#[derive(Default)]
pub struct UrlMemo(std::sync::Mutex<Option<(String, reqwest::Url)>>);

impl UrlMemo {
    /// `text` parsed (a copy of the last one when it is the same text); `None` if it is no URL.
    fn parse(&self, text: &str) -> Option<reqwest::Url> {
        if let Ok(last) = self.0.lock()
            && let Some((seen, url)) = last.as_ref()
            && seen == text
        {
            return Some(url.clone());
        }
        let url = reqwest::Url::parse(text).ok()?;
        if let Ok(mut last) = self.0.lock() {
            *last = Some((text.to_owned(), url.clone()));
        }
        Some(url)
    }
}

/// Sends `request`. Waits at most `first_byte_ms` for the response headers. With `memo`, the URL
/// is parsed through it ([`UrlMemo`]).
pub async fn send(
    client: &reqwest::Client,
    request: &HttpRequest,
    secrets: &BTreeMap<String, String>,
    timeouts: &UpstreamTimeouts,
    what: &str,
    memo: Option<&UrlMemo>,
) -> Result<reqwest::Response, Failure> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
        not_retryable(Error::Plugin(format!(
            "invalid HTTP method {:?}",
            request.method
        )))
    })?;
    let url = match memo {
        Some(memo) => memo.parse(&request.url),
        None => reqwest::Url::parse(&request.url).ok(),
    }
    .ok_or_else(|| not_retryable(Error::Plugin("the plugin built an invalid URL".into())))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(not_retryable(Error::Plugin(
            "the plugin built a URL that is not http(s)".into(),
        )));
    }
    let mut builder = client
        .request(method, url)
        .timeout(Duration::from_millis(timeouts.total_ms));
    for (name, value) in &request.headers {
        builder = builder.header(
            name.as_str(),
            substitute(value, secrets).map_err(not_retryable)?,
        );
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    match tokio::time::timeout(
        Duration::from_millis(timeouts.first_byte_ms),
        builder.send(),
    )
    .await
    {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(e)) => Err(Failure {
            error: request_error(&e, what),
            retryable: e.is_connect() || e.is_timeout(),
        }),
        Err(_) => Err(Failure {
            error: Error::Timeout(format!(
                "{what} sent no response within {} ms",
                timeouts.first_byte_ms
            )),
            retryable: true,
        }),
    }
}

/// Whether a response status is worth another attempt (rate limited or a server error), and the
/// delay the server asked for in `Retry-After` (seconds), if any.
pub fn retry_hint(response: &reqwest::Response) -> (bool, Option<Duration>) {
    let status = response.status();
    let retry = status.as_u16() == 429 || status.is_server_error();
    let after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    (retry, after)
}

/// Reads a whole response.
pub async fn read_whole(response: reqwest::Response, what: &str) -> Result<HttpResponse, Error> {
    let status = response.status().as_u16();
    let headers = headers_of(&response);
    let body = response
        .bytes()
        .await
        .map_err(|e| request_error(&e, what))?;
    Ok(HttpResponse {
        status,
        headers,
        body: text(body.into()),
    })
}

/// `bytes` as text, any bytes that are not UTF-8 replaced (U+FFFD). Valid text, the usual case,
/// is checked by the fast validation and kept without a copy.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

/// A streamed body's bytes as text, chunk by chunk. A character whose bytes a chunk boundary
/// split waits for the rest of them in the next chunk (Chinese text is three bytes a character,
/// and the network cuts where it likes); bytes that can never be UTF-8 are replaced (U+FFFD).
#[derive(Default)]
struct Utf8Stream {
    /// The start of a character that the last chunk ended in.
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Appends what `chunk` completes to `out`.
    fn push(&mut self, chunk: &[u8], out: &mut String) {
        self.pending.extend_from_slice(chunk);
        let whole = self.pending.len() - unfinished(&self.pending);
        let rest = self.pending.split_off(whole);
        out.push_str(&text(std::mem::replace(&mut self.pending, rest)));
    }

    /// At the end of the body: a character left unfinished is replaced.
    fn finish(&mut self, out: &mut String) {
        out.push_str(&text(std::mem::take(&mut self.pending)));
    }
}

/// How many bytes at the end of `bytes` begin a character that needs more bytes than follow.
fn unfinished(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0b1100_0000 == 0b1000_0000 {
            continue; // a continuation byte: look further back for the lead
        }
        let needs = match byte {
            0b1100_0000..=0b1101_1111 => 2,
            0b1110_0000..=0b1110_1111 => 3,
            0b1111_0000..=0b1111_0111 => 4,
            _ => 1,
        };
        return if needs > back { back } else { 0 };
    }
    0
}

fn headers_of(response: &reqwest::Response) -> Vec<(String, String)> {
    response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

/// Splits a response body into server-sent events.
pub fn sse_events(
    response: reqwest::Response,
    what: String,
) -> BoxStream<'static, Result<SseEvent, Error>> {
    struct State {
        body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
        decoder: Utf8Stream,
        buffer: String,
        ready: VecDeque<SseEvent>,
        ended: bool,
        what: String,
    }
    let state = State {
        body: response.bytes_stream().boxed(),
        decoder: Utf8Stream::default(),
        buffer: String::new(),
        ready: VecDeque::new(),
        ended: false,
        what,
    };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.ready.pop_front() {
                return Some((Ok(event), s));
            }
            if s.ended {
                return None;
            }
            match s.body.next().await {
                Some(Ok(chunk)) => {
                    s.decoder.push(&chunk, &mut s.buffer);
                    drain_events(&mut s.buffer, &mut s.ready, false);
                }
                Some(Err(e)) => {
                    s.ended = true;
                    let error = request_error(&e, &s.what);
                    return Some((Err(error), s));
                }
                None => {
                    s.ended = true;
                    s.decoder.finish(&mut s.buffer);
                    drain_events(&mut s.buffer, &mut s.ready, true);
                }
            }
        }
    })
    .boxed()
}

/// Moves every complete event (ended by a blank line) from `buffer` to `out`; at the end of the
/// body, the remainder counts as a last event. Line ends may be `\r\n`, `\r` or `\n`: a `\r`
/// that ends the buffer waits for the next chunk, which may begin with its `\n`.
fn drain_events(buffer: &mut String, out: &mut VecDeque<SseEvent>, at_end: bool) {
    let mut held = false;
    if buffer.contains('\r') {
        held = !at_end && buffer.ends_with('\r');
        if held {
            buffer.pop();
        }
        *buffer = buffer.replace("\r\n", "\n").replace('\r', "\n");
    }
    while let Some(end) = buffer.find("\n\n") {
        let block: String = buffer.drain(..end + 2).collect();
        parse_block(&block, out);
    }
    if held {
        buffer.push('\r');
    }
    if at_end && !buffer.trim().is_empty() {
        let block = std::mem::take(buffer);
        parse_block(&block, out);
    }
}

fn parse_block(block: &str, out: &mut VecDeque<SseEvent>) {
    let mut event = None;
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => data.push(value),
            "event" => event = Some(value.to_owned()),
            _ => {}
        }
    }
    if !data.is_empty() {
        out.push_back(SseEvent {
            event,
            data: data.join("\n"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_on_blank_lines_across_chunks() {
        let mut buffer = String::new();
        let mut out = VecDeque::new();
        buffer.push_str("data: {\"a\":1}\n\nda");
        drain_events(&mut buffer, &mut out, false);
        assert_eq!(out.len(), 1);
        buffer.push_str("ta: [DONE]\r\n\r\n: comment\n\nevent: x\ndata: one\ndata: two");
        drain_events(&mut buffer, &mut out, false);
        assert_eq!(out.len(), 2);
        drain_events(&mut buffer, &mut out, true);
        let all: Vec<_> = out.into_iter().collect();
        assert_eq!(all[0].data, "{\"a\":1}");
        assert_eq!(all[1].data, "[DONE]");
        assert_eq!(all[2].event.as_deref(), Some("x"));
        assert_eq!(all[2].data, "one\ntwo");
    }

    #[test]
    fn a_line_end_split_between_chunks_is_one_line_end() {
        let mut buffer = String::new();
        let mut out = VecDeque::new();
        for chunk in ["data: one\r", "\ndata: two\r", "\n\r", "\n"] {
            buffer.push_str(chunk);
            drain_events(&mut buffer, &mut out, false);
        }
        drain_events(&mut buffer, &mut out, true);
        let all: Vec<_> = out.into_iter().map(|e| e.data).collect();
        assert_eq!(all, ["one\ntwo"]);
        // A lone `\r` is a line end too, also as the body's last byte.
        let (mut buffer, mut out) = (String::from("data: a\r\rdata: b\r"), VecDeque::new());
        drain_events(&mut buffer, &mut out, false);
        drain_events(&mut buffer, &mut out, true);
        let all: Vec<_> = out.into_iter().map(|e| e.data).collect();
        assert_eq!(all, ["a", "b"]);
    }

    #[test]
    fn a_character_split_between_chunks_arrives_whole() {
        let body = "data: 云端 AI ✓ 🚀 é\n\n";
        let bytes = body.as_bytes();
        // Every way of cutting the body in two, and one byte a chunk.
        for cut in 0..=bytes.len() {
            let (mut decoder, mut out) = (Utf8Stream::default(), String::new());
            decoder.push(&bytes[..cut], &mut out);
            decoder.push(&bytes[cut..], &mut out);
            decoder.finish(&mut out);
            assert_eq!(out, body, "cut at {cut}");
        }
        let (mut decoder, mut out) = (Utf8Stream::default(), String::new());
        for byte in bytes {
            decoder.push(std::slice::from_ref(byte), &mut out);
        }
        decoder.finish(&mut out);
        assert_eq!(out, body);
        // Bytes that are not UTF-8 are replaced, and so is a character the body ends inside.
        let (mut decoder, mut out) = (Utf8Stream::default(), String::new());
        decoder.push(b"a\xffb\xe4", &mut out);
        decoder.push(b"\xba", &mut out);
        decoder.finish(&mut out);
        assert_eq!(out, "a\u{fffd}b\u{fffd}");
        assert_eq!(text(b"ok \xc3\xa9".to_vec()), "ok é");
        assert_eq!(text(b"\xc3".to_vec()), "\u{fffd}");
    }

    #[test]
    fn secrets_are_substituted_and_missing_ones_refused() {
        let secrets = BTreeMap::from([("api_key".to_owned(), "sk-1".to_owned())]);
        assert_eq!(
            substitute("Bearer ${secret:api_key}", &secrets).unwrap(),
            "Bearer sk-1"
        );
        assert_eq!(substitute("plain", &secrets).unwrap(), "plain");
        assert!(substitute("${secret:other}", &secrets).is_err());
        assert!(substitute("${secret:api_key", &secrets).is_err());
    }
}

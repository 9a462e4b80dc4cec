//! The HTTP exchanges the host performs for a plugin: the request a plugin builds, the response
//! it gets back to parse, and one server-sent event of a streamed body.
//!
//! A response's body and an event's data are text, usually JSON. Written as a JSON string, JSON
//! text is escaped quote by quote on one side and unescaped on the other: for a small answer that
//! was about a tenth of a call's work (`bench/RESULTS.md`, "2026-12-05, forenoon"). So a host
//! may write JSON text as the JSON itself instead, under `body_json` (`data_json` for an event),
//! to a plugin whose flags include [`crate::abi::FLAG_RAW_JSON_BODIES`] ([`JsonBodies`]). This
//! SDK sets that flag and reads either form into the same `String`; only whitespace around the
//! JSON text is not kept.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

/// An HTTP request for the host to send. Header values may contain `${secret:NAME}`, which the
/// host replaces with the secret's value just before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RequestWire")]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header name and value pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body text (usually JSON).
    #[serde(default)]
    pub body: Option<String>,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ResponseWire")]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header name and value pairs (names lower-case).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "EventWire")]
pub struct SseEvent {
    /// The `event:` field, if any.
    #[serde(default)]
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An [`HttpRequest`] as it may arrive: its body as a string (`body`) or, when it is JSON, as
/// the JSON itself (`body_json`).
#[derive(Deserialize)]
struct RequestWire {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_json: Option<Box<RawValue>>,
}

impl TryFrom<RequestWire> for HttpRequest {
    type Error = &'static str;

    fn try_from(wire: RequestWire) -> Result<Self, Self::Error> {
        let body = match (wire.body, wire.body_json) {
            (None, None) => None,
            (body, json) => Some(text(body, json, "`body` or `body_json`, not both")?),
        };
        Ok(HttpRequest {
            method: wire.method,
            url: wire.url,
            headers: wire.headers,
            body,
        })
    }
}

/// An [`HttpResponse`] as it may arrive: its body as a string (`body`) or, when it is JSON, as
/// the JSON itself (`body_json`).
#[derive(Deserialize)]
struct ResponseWire {
    status: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_json: Option<Box<RawValue>>,
}

impl TryFrom<ResponseWire> for HttpResponse {
    type Error = &'static str;

    fn try_from(wire: ResponseWire) -> Result<Self, Self::Error> {
        Ok(HttpResponse {
            status: wire.status,
            headers: wire.headers,
            body: text(wire.body, wire.body_json, "`body` or `body_json`")?,
        })
    }
}

/// An [`SseEvent`] as it may arrive: its data as a string (`data`) or as JSON (`data_json`).
#[derive(Deserialize)]
struct EventWire {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    data_json: Option<Box<RawValue>>,
}

impl TryFrom<EventWire> for SseEvent {
    type Error = &'static str;

    fn try_from(wire: EventWire) -> Result<Self, Self::Error> {
        Ok(SseEvent {
            event: wire.event,
            data: text(wire.data, wire.data_json, "`data` or `data_json`")?,
        })
    }
}

/// The text of a field sent in one of its two forms (exactly one).
fn text(
    string: Option<String>,
    json: Option<Box<RawValue>>,
    what: &'static str,
) -> Result<String, &'static str> {
    match (string, json) {
        (Some(text), None) => Ok(text),
        // The JSON text as it was written, without a copy.
        (None, Some(json)) => Ok(Box::<str>::from(json).into_string()),
        _ => Err(what),
    }
}

/// JSON text, if `text` is JSON other than `null` (which would read as no body at all);
/// whitespace around it is not kept.
fn as_json(text: &str) -> Option<&RawValue> {
    serde_json::from_str::<&RawValue>(text)
        .ok()
        .filter(|json| json.get() != "null")
}

/// A message with a body as its writer sends it to the other side: with `raw_json`, a body (or
/// an event's data) that is JSON goes as the JSON itself (`body_json`, `data_json`); without, the
/// message is written as it is. `raw_json` only for a side that reads that form: a plugin whose
/// flags include [`crate::abi::FLAG_RAW_JSON_BODIES`] (an [`HttpResponse`], an [`SseEvent`]), or a
/// host that offered `raw_json_bodies` to `create` (an [`HttpRequest`], [`crate::HostOffers`]).
pub struct JsonBodies<'a, T> {
    /// The message.
    pub message: &'a T,
    /// Whether the reader takes the JSON form.
    pub raw_json: bool,
}

impl<T> JsonBodies<'_, T> {
    /// Writes `text` as the field `name`, or as `{name}_json` when it goes as JSON.
    fn text<S: SerializeStruct>(
        &self,
        out: &mut S,
        names: [&'static str; 2],
        text: Option<&str>,
    ) -> Result<(), S::Error> {
        match text.filter(|_| self.raw_json).and_then(as_json) {
            Some(json) => out.serialize_field(names[1], json),
            None => out.serialize_field(names[0], &text),
        }
    }
}

impl Serialize for JsonBodies<'_, HttpResponse> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let HttpResponse {
            status,
            headers,
            body,
        } = self.message;
        let mut out = serializer.serialize_struct("HttpResponse", 3)?;
        out.serialize_field("status", status)?;
        out.serialize_field("headers", headers)?;
        self.text(&mut out, ["body", "body_json"], Some(body))?;
        out.end()
    }
}

impl Serialize for JsonBodies<'_, HttpRequest> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let HttpRequest {
            method,
            url,
            headers,
            body,
        } = self.message;
        let mut out = serializer.serialize_struct("HttpRequest", 4)?;
        out.serialize_field("method", method)?;
        out.serialize_field("url", url)?;
        out.serialize_field("headers", headers)?;
        self.text(&mut out, ["body", "body_json"], body.as_deref())?;
        out.end()
    }
}

impl Serialize for JsonBodies<'_, SseEvent> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let SseEvent { event, data } = self.message;
        let mut out = serializer.serialize_struct("SseEvent", 2)?;
        out.serialize_field("event", event)?;
        self.text(&mut out, ["data", "data_json"], Some(data))?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies a provider sends: JSON with quotes, escapes and non-ASCII text, JSON with
    /// whitespace around it, a bare JSON string, and text that is not JSON.
    const BODIES: [&str; 7] = [
        r#"{"id":"c1","choices":[{"message":{"role":"assistant","content":"say \"hi\"\n\u00e9 好"}}],"usage":{"prompt_tokens":3}}"#,
        "  {\"error\": {\"message\": \"quota\"}}\n",
        r#""just a string""#,
        "<html><body>502 Bad Gateway</body></html>",
        "",
        "[1, 2, {\"a\": null}]",
        " null ",
    ];

    fn response(body: &str) -> HttpResponse {
        HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    #[test]
    fn a_json_body_arrives_as_the_same_text_in_either_form() {
        for body in BODIES {
            let sent = response(body);
            let as_string = serde_json::to_string(&JsonBodies {
                message: &sent,
                raw_json: false,
            })
            .unwrap();
            let as_json = serde_json::to_string(&JsonBodies {
                message: &sent,
                raw_json: true,
            })
            .unwrap();
            // Without the flag, the host writes exactly what the response's own serialization
            // writes, which every plugin reads.
            assert_eq!(as_string, serde_json::to_string(&sent).unwrap());
            let is_json =
                serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| !v.is_null());
            assert_eq!(as_json.contains("\"body_json\":"), is_json, "{body}");
            assert_eq!(
                serde_json::from_str::<HttpResponse>(&as_string).unwrap(),
                sent
            );
            let read: HttpResponse = serde_json::from_str(&as_json).unwrap();
            let expected = if is_json { body.trim() } else { body };
            assert_eq!(read.body, expected, "only the whitespace around JSON goes");
            assert_eq!((read.status, &read.headers), (sent.status, &sent.headers));
            if is_json {
                // The body, read from either form, parses to the same JSON.
                let value = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
                assert_eq!(value(&read.body), value(body));
            }
        }
    }

    #[test]
    fn an_event_arrives_as_the_same_text_in_either_form() {
        for data in BODIES.iter().copied().chain(["[DONE]"]) {
            let sent = SseEvent {
                event: Some("message".into()),
                data: data.into(),
            };
            let as_string = serde_json::to_string(&JsonBodies {
                message: &sent,
                raw_json: false,
            })
            .unwrap();
            assert_eq!(as_string, serde_json::to_string(&sent).unwrap());
            let as_json = serde_json::to_string(&JsonBodies {
                message: &sent,
                raw_json: true,
            })
            .unwrap();
            let read: SseEvent = serde_json::from_str(&as_json).unwrap();
            assert_eq!(read.event, sent.event);
            let is_json =
                serde_json::from_str::<serde_json::Value>(data).is_ok_and(|v| !v.is_null());
            assert_eq!(read.data, if is_json { data.trim() } else { data });
            assert_eq!(serde_json::from_str::<SseEvent>(&as_string).unwrap(), sent);
        }
    }

    #[test]
    fn a_request_body_arrives_as_the_same_text_in_either_form() {
        for body in BODIES.iter().map(|b| Some(b.to_string())).chain([None]) {
            let sent = HttpRequest {
                method: "POST".into(),
                url: "http://127.0.0.1:9/v1/chat/completions".into(),
                headers: vec![("authorization".into(), "Bearer ${secret:api_key}".into())],
                body: body.clone(),
            };
            let write = |raw_json| {
                serde_json::to_string(&JsonBodies {
                    message: &sent,
                    raw_json,
                })
                .unwrap()
            };
            assert_eq!(write(false), serde_json::to_string(&sent).unwrap());
            assert_eq!(
                serde_json::from_str::<HttpRequest>(&write(false)).unwrap(),
                sent
            );
            let read: HttpRequest = serde_json::from_str(&write(true)).unwrap();
            let is_json = body.as_deref().is_some_and(|b| {
                serde_json::from_str::<serde_json::Value>(b).is_ok_and(|v| !v.is_null())
            });
            assert_eq!(write(true).contains("\"body_json\":"), is_json);
            let expected = body.as_deref().map(|b| if is_json { b.trim() } else { b });
            assert_eq!(read.body.as_deref(), expected);
            assert_eq!(
                (&read.method, &read.url, &read.headers),
                (&sent.method, &sent.url, &sent.headers)
            );
        }
        let both = r#"{"method": "POST", "url": "http://x/", "body": "{}", "body_json": {}}"#;
        assert!(serde_json::from_str::<HttpRequest>(both).is_err());
    }

    #[test]
    fn a_body_in_both_forms_or_in_neither_is_refused() {
        for bad in [
            r#"{"status": 200, "body": "{}", "body_json": {}}"#,
            r#"{"status": 200, "headers": []}"#,
            r#"{"status": 200, "body_json": {"unterminated": }"#,
        ] {
            assert!(serde_json::from_str::<HttpResponse>(bad).is_err(), "{bad}");
        }
        for bad in [r#"{"data": "x", "data_json": 1}"#, r#"{"event": "e"}"#] {
            assert!(serde_json::from_str::<SseEvent>(bad).is_err(), "{bad}");
        }
        // `null` is no body: as before, a response needs one.
        assert!(
            serde_json::from_str::<HttpResponse>(r#"{"status": 200, "body_json": null}"#).is_err()
        );
    }

    #[test]
    fn this_sdk_tells_hosts_it_reads_json_bodies() {
        use crate::{ChatRequest, ChatResponse, Manifest, ModelInfo, PluginConfig, PluginError};
        struct Quiet;
        impl crate::Provider for Quiet {
            const NAME: &'static str = "quiet";
            fn manifest() -> Manifest {
                unreachable!("not called")
            }
            fn create(_: PluginConfig) -> Result<Self, PluginError> {
                Ok(Quiet)
            }
            fn models(&self) -> Vec<ModelInfo> {
                Vec::new()
            }
            fn complete(&self, _: &ChatRequest) -> Result<ChatResponse, PluginError> {
                Ok(ChatResponse::default())
            }
        }
        for unwind in [true, false] {
            let table = crate::ffi::vtable::<crate::ffi::ProviderPlugin<Quiet>>(unwind, true);
            assert_ne!(table.flags & crate::abi::FLAG_RAW_JSON_BODIES, 0);
            assert_eq!(table.flags & crate::abi::FLAG_PANIC_UNWIND != 0, unwind);
        }
    }
}

//! The frames the host and a runner exchange over the runner's stdin and stdout.
//!
//! A frame is length-prefixed binary, little-endian:
//!
//! ```text
//! u32 length of what follows | u64 id | u8 kind | i32 status | u16 method length | method | payload
//! ```
//!
//! The payload is the same JSON the C ABI carries (a `ChatRequest`, an `HttpResponse`, a
//! `PluginError`...), passed through byte for byte: no second JSON encoding, and a plugin that
//! answers bytes that are not JSON is reported by the host exactly as it is in-process. Requests
//! carry a fresh `id`; the runner answers each with one [`kind::REPLY`] of the same id (after
//! any [`kind::EVENT`]s of a stream), in any order: calls are multiplexed.

use std::io::{self, Read, Write};

/// What a frame is.
pub mod kind {
    /// Host → runner: name and flags of the library (reply payload: `{"name", "panic_unwind",
    /// "raw_json_bodies"}`,
    /// or a `PluginError` with status `ERROR` when the library cannot be used).
    pub const DESCRIBE: u8 = 1;
    /// Host → runner: the library's manifest (reply: status and manifest JSON, as `manifest`).
    pub const MANIFEST: u8 = 2;
    /// Host → runner: create the runner's one instance from the payload config JSON.
    pub const CREATE: u8 = 3;
    /// Host → runner: `call(method, payload)` on the instance.
    pub const CALL: u8 = 4;
    /// Host → runner: `call_stream(method, payload)`; events come back as [`EVENT`] frames.
    pub const STREAM: u8 = 5;
    /// Host → runner: nobody listens to stream `id` any more; the plugin is told to stop.
    pub const CANCEL: u8 = 6;
    /// Runner → host: the answer to request `id`: `status` and output bytes.
    pub const REPLY: u8 = 128;
    /// Runner → host: one event of stream `id`.
    pub const EVENT: u8 = 129;
}

/// The largest frame either side accepts (64 MiB): a corrupt length fails instead of allocating.
pub const MAX_FRAME: usize = 64 << 20;

/// Bytes of a frame after the length, before the method: id, kind, status, method length.
const HEAD: usize = 8 + 1 + 4 + 2;

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Pairs a reply (and events) with its request.
    pub id: u64,
    /// One of [`kind`].
    pub kind: u8,
    /// A reply's status (`cloudbase_plugin_api::abi::status`); 0 in requests and events.
    pub status: i32,
    /// The plugin method of a call or stream; empty otherwise.
    pub method: String,
    /// JSON bytes.
    pub payload: Vec<u8>,
}

impl Frame {
    /// A request of `kind` for `method` with `payload`.
    pub fn request(id: u64, kind: u8, method: &str, payload: Vec<u8>) -> Self {
        Frame {
            id,
            kind,
            status: 0,
            method: method.to_owned(),
            payload,
        }
    }

    /// The whole frame, length prefix included, ready to write.
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let method = self.method.as_bytes();
        let method_len = u16::try_from(method.len())
            .map_err(|_| invalid("a method name longer than 65535 bytes"))?;
        let body = HEAD + method.len() + self.payload.len();
        if body > MAX_FRAME {
            return Err(invalid("a frame larger than 64 MiB"));
        }
        let mut out = Vec::with_capacity(4 + body);
        out.extend_from_slice(&u32::try_from(body).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.push(self.kind);
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&method_len.to_le_bytes());
        out.extend_from_slice(method);
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Parses a frame body (what follows the length prefix).
    pub fn decode(body: Vec<u8>) -> io::Result<Frame> {
        if body.len() < HEAD {
            return Err(invalid("a frame shorter than its header"));
        }
        let word = |range: std::ops::Range<usize>| -> [u8; 8] {
            let mut bytes = [0u8; 8];
            bytes[..range.len()].copy_from_slice(&body[range]);
            bytes
        };
        let id = u64::from_le_bytes(word(0..8));
        let kind = body[8];
        let status = i32::from_le_bytes({
            let w = word(9..13);
            [w[0], w[1], w[2], w[3]]
        });
        let method_len = usize::from(u16::from_le_bytes({
            let w = word(13..15);
            [w[0], w[1]]
        }));
        let method_end = HEAD + method_len;
        if body.len() < method_end {
            return Err(invalid("a method name past the end of its frame"));
        }
        let method = std::str::from_utf8(&body[HEAD..method_end])
            .map_err(|_| invalid("a method name that is not UTF-8"))?
            .to_owned();
        let payload = body[method_end..].to_vec();
        Ok(Frame {
            id,
            kind,
            status,
            method,
            payload,
        })
    }

    /// The body length a frame's 4-byte prefix announces, checked against [`MAX_FRAME`].
    pub fn body_len(prefix: [u8; 4]) -> io::Result<usize> {
        let len = usize::try_from(u32::from_le_bytes(prefix)).unwrap_or(usize::MAX);
        if len > MAX_FRAME {
            return Err(invalid("a frame larger than 64 MiB"));
        }
        Ok(len)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("protocol error: {what}"),
    )
}

/// Reads one frame; `None` at a clean end of input (the other side closed the pipe).
pub fn read_frame(input: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut prefix = [0u8; 4];
    match input.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut body = vec![0u8; Frame::body_len(prefix)?];
    input.read_exact(&mut body)?;
    Frame::decode(body).map(Some)
}

/// Writes one frame and flushes it.
pub fn write_frame(output: &mut impl Write, frame: &Frame) -> io::Result<()> {
    output.write_all(&frame.encode()?)?;
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_survives_the_round_trip_and_bad_lengths_are_refused() {
        let frame = Frame {
            id: 7,
            kind: kind::REPLY,
            status: -3,
            method: "chat.parse_response".into(),
            payload: vec![0xff, 0xfe, b'{', b'}'],
        };
        let bytes = frame.encode().unwrap();
        let back = read_frame(&mut bytes.as_slice()).unwrap().unwrap();
        assert_eq!(back, frame);
        assert!(
            read_frame(&mut [].as_slice()).unwrap().is_none(),
            "clean end"
        );
        let huge = u32::MAX.to_le_bytes();
        assert!(
            read_frame(&mut huge.as_slice()).is_err(),
            "a length past MAX_FRAME"
        );
        let mut short = bytes.clone();
        short.truncate(bytes.len() - 1);
        assert!(
            read_frame(&mut short.as_slice()).is_err(),
            "a truncated frame"
        );
    }
}

//! Server-sent events: an incremental parser for upstream streams and
//! writers for the streams we send.
//!
//! The parser follows the WHATWG rules that matter to LLM streams: events
//! end at a blank line, lines end in `\n`, `\r\n` or `\r`, `data:` lines
//! join with `\n`, a single space after the colon is dropped, comment lines
//! (`:`) are ignored. Input may be split anywhere, even inside a UTF-8
//! character or between `\r` and `\n`.

use bytes::{BufMut, Bytes, BytesMut};

/// One parsed event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// An incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the event being parsed (from its first line) and beyond.
    buf: BytesMut,
    /// Bytes of `buf` already consumed as complete lines.
    pos: usize,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to it.
    skip_lf: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A new parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `chunk` and pushes every event it completes onto `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        self.feed_inner(chunk, &mut |ev, _raw| out.push(ev));
    }

    /// Like [`feed`](Self::feed), but also hands over each event's raw bytes
    /// (including its terminating blank line), for pass-through streams.
    pub fn feed_raw(&mut self, chunk: &[u8], out: &mut Vec<(SseEvent, Bytes)>) {
        self.feed_inner(chunk, &mut |ev, raw| out.push((ev, raw)));
    }

    /// Whether bytes were received that do not yet form a complete event.
    pub fn has_pending(&self) -> bool {
        self.has_data || self.event.is_some() || self.pos < self.buf.len()
    }

    /// Ends the input: an event not closed by a blank line is dispatched
    /// (upstreams that close the connection right after the last `data:`).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.pos < self.buf.len() {
            let line = self.buf.split_off(self.pos);
            self.line(&line);
        }
        self.buf.clear();
        self.pos = 0;
        let ev = self.take_event();
        (!ev.0).then_some(ev.1)
    }

    fn feed_inner(&mut self, mut chunk: &[u8], emit: &mut dyn FnMut(SseEvent, Bytes)) {
        // An empty chunk (an empty body frame) says nothing about the `\n`.
        if chunk.is_empty() {
            return;
        }
        let skip = std::mem::take(&mut self.skip_lf) && chunk[0] == b'\n';
        if skip && self.buf.is_empty() {
            // The `\r` was the blank line of an event already handed out.
            chunk = &chunk[1..];
        }
        self.buf.extend_from_slice(chunk);
        if skip && self.pos > 0 {
            // Inside an event the `\n` stays in its raw bytes, or its
            // `\r\n\n` would go to pass-through clients as `\r\n`, which
            // does not end it; it is no line of its own (`pos` was at the
            // end of `buf`).
            self.pos += 1;
        }
        while let Some(off) = memchr::memchr2(b'\n', b'\r', &self.buf[self.pos..]) {
            let line_end = self.pos + off;
            let mut next = line_end + 1;
            if self.buf[line_end] == b'\r' {
                if next == self.buf.len() {
                    self.skip_lf = true;
                } else if self.buf[next] == b'\n' {
                    next += 1;
                }
            }
            if line_end == self.pos {
                // A blank line ends the event.
                let raw = self.buf.split_to(next).freeze();
                self.pos = 0;
                let (empty, ev) = self.take_event();
                if !empty {
                    emit(ev, raw);
                }
            } else {
                // The fields apart, so that the line is read in place.
                let line = &self.buf[self.pos..line_end];
                field_line(line, &mut self.event, &mut self.data, &mut self.has_data);
                self.pos = next;
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        field_line(line, &mut self.event, &mut self.data, &mut self.has_data);
    }

    /// Takes the event parsed so far; the flag is true when it has no data
    /// (such an event is not dispatched).
    fn take_event(&mut self) -> (bool, SseEvent) {
        let empty = !self.has_data;
        self.has_data = false;
        (
            empty,
            SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            },
        )
    }
}

/// Applies one non-blank line to the event being parsed.
fn field_line(line: &[u8], event: &mut Option<String>, data: &mut String, has_data: &mut bool) {
    if line.first() == Some(&b':') {
        return;
    }
    let (field, value) = match memchr::memchr(b':', line) {
        Some(i) => {
            let v = &line[i + 1..];
            (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
        }
        None => (line, &b""[..]),
    };
    // Valid UTF-8 is the rule; the lossy path (which walks the bytes in
    // chunks, measured at a tenth of a pass-through stream's instructions)
    // only for the exception.
    let value = match std::str::from_utf8(value) {
        Ok(v) => std::borrow::Cow::Borrowed(v),
        Err(_) => String::from_utf8_lossy(value),
    };
    match field {
        b"event" => *event = Some(value.into_owned()),
        b"data" => {
            if *has_data {
                data.push('\n');
            }
            data.push_str(&value);
            *has_data = true;
        }
        _ => {}
    }
}

/// Appends an event with an `event:` line (Anthropic, Responses).
pub fn write_event(out: &mut BytesMut, event: &str, data: &[u8]) {
    out.reserve(event.len() + data.len() + 16);
    out.put_slice(b"event: ");
    out.put_slice(event.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
}

/// Appends a data-only event (OpenAI Chat Completions, Gemini).
pub fn write_data(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 8);
    out.put_slice(b"data: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<(SseEvent, Bytes)> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in input.chunks(piece) {
            p.feed_raw(c, &mut out);
        }
        out
    }

    /// Found by the `sse` fuzz target: an empty chunk between a `\r` and
    /// its `\n` made the `\n` a blank line, ending the event early.
    #[test]
    fn an_empty_chunk_inside_a_crlf_changes_nothing() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for chunk in [&b"data: a\r"[..], b"", b"\ndata: b\r\n\r\n"] {
            p.feed_raw(chunk, &mut out);
        }
        let events: Vec<_> = out.iter().map(|(e, _)| e.data.as_str()).collect();
        assert_eq!(events, ["a\nb"]);
        assert_eq!(&out[0].1[..], b"data: a\r\ndata: b\r\n\r\n");
    }

    /// Found by the `sse` fuzz target: the `\n` of a `\r\n` split between
    /// chunks was dropped from the raw bytes, so an event's `\r\n\n` went
    /// to pass-through clients as `\r\n`, which does not end the event.
    #[test]
    fn raw_bytes_keep_a_crlf_split_between_chunks() {
        let input = b"data: a\r\n\ndata: b\r\r\ndata: c\n\n";
        for at in 1..input.len() {
            let mut p = SseParser::new();
            let mut out = Vec::new();
            p.feed_raw(&input[..at], &mut out);
            p.feed_raw(&input[at..], &mut out);
            let events: Vec<_> = out.iter().map(|(e, _)| e.data.as_str()).collect();
            assert_eq!(events, ["a", "b", "c"], "split at {at}");
            for (ev, raw) in &out {
                let mut again = SseParser::new();
                let mut evs = Vec::new();
                again.feed(raw, &mut evs);
                assert_eq!(evs, std::slice::from_ref(ev), "split at {at}: {raw:?}");
                assert!(!again.has_pending(), "split at {at}: {raw:?}");
            }
        }
    }

    #[test]
    fn parses_events_split_anywhere() {
        let input = b"event: message_start\ndata: {\"a\":1}\n\n: ping\n\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n";
        for piece in 1..input.len() {
            let out = parse_in_pieces(input, piece);
            let evs: Vec<_> = out.iter().map(|(e, _)| e.clone()).collect();
            assert_eq!(
                evs,
                vec![
                    SseEvent {
                        event: Some("message_start".into()),
                        data: "{\"a\":1}".into()
                    },
                    SseEvent {
                        event: None,
                        data: "x\ny".into()
                    },
                    SseEvent {
                        event: None,
                        data: "[DONE]".into()
                    },
                ],
                "piece size {piece}"
            );
            assert_eq!(&out[0].1[..], b"event: message_start\ndata: {\"a\":1}\n\n");
            assert_eq!(&out[2].1[..], b"data: [DONE]\n\n");
        }
    }

    #[test]
    fn finish_dispatches_an_unterminated_event() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(b"data: last", &mut out);
        assert!(out.is_empty());
        assert!(p.has_pending());
        assert_eq!(p.finish().unwrap().data, "last");
        assert!(p.finish().is_none());
    }

    #[test]
    fn keeps_multibyte_text_split_across_chunks() {
        let input = "data: h\u{e9}llo \u{1f600}\n\n".as_bytes();
        for piece in 1..input.len() {
            let out = parse_in_pieces(input, piece);
            assert_eq!(out[0].0.data, "h\u{e9}llo \u{1f600}");
        }
    }
}

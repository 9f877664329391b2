//! Directives, the scripted reply (text, tool calls, usage) and the stream
//! driver shared by the three APIs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, Uri};
use serde_json::{json, Map, Value};

/// The longest any directive may make the mock wait.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(120);

/// Default number of text deltas in a stream.
pub(crate) const DEFAULT_CHUNKS: usize = 5;

/// Upper bound for `chunks=N` (keeps a typo from building a huge stream).
const MAX_CHUNKS: usize = 10_000;

/// The reasoning text used by the `think` directive.
pub(crate) const THINKING_TEXT: &str =
    "The mock upstream is thinking about the request before it answers.";

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// The next value of the process-wide ID counter.
pub(crate) fn next_id() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Which tool the `tool` directive asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolPick {
    /// The first tool of the request.
    First,
    /// The tool with this name.
    Named(String),
}

/// The parsed directives of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub latency: Option<Duration>,
    pub ttfb: Option<Duration>,
    pub gap: Option<Duration>,
    pub chunks: Option<usize>,
    pub status: Option<u16>,
    pub retry_after: Option<u64>,
    pub cut: Option<usize>,
    pub stall: bool,
    pub stall_after: Option<usize>,
    pub tool: Option<ToolPick>,
    pub parallel: bool,
    pub think: bool,
    pub cached: u64,
    pub echo: bool,
    /// `echo-head`: the reply text (the request's path and headers as JSON).
    pub echo_head: Option<String>,
    /// `leak`: the credentials the request carried, as one line of text.
    pub leak: Option<String>,
    pub fail_after: Option<usize>,
}

/// Request headers that carry credentials.
pub(crate) const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-api-key", "x-goog-api-key"];

impl Directives {
    /// Parses the directives of `model` (after the first `~`, `~`-separated)
    /// then those of the `x-mock` header (`;`-separated), which win.
    /// Returns the base model (before the first `~`) and the directives.
    pub(crate) fn from_request<'m>(
        model: &'m str,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(&'m str, Directives), String> {
        let (base, mut d) = Self::parse(model, headers)?;
        if d.leak.is_some() {
            d.leak = Some(leak_text(uri, headers));
        }
        if d.echo_head.is_some() {
            d.echo_head = Some(head_text(uri, headers));
        }
        Ok((base, d))
    }

    fn parse<'m>(model: &'m str, headers: &HeaderMap) -> Result<(&'m str, Directives), String> {
        let mut d = Directives::default();
        let mut parts = model.split('~');
        let base = parts.next().unwrap_or_default();
        for part in parts {
            d.apply(part)?;
        }
        for value in headers.get_all("x-mock") {
            let value = value
                .to_str()
                .map_err(|_| "x-mock header is not visible ASCII".to_string())?;
            for part in value.split(';') {
                d.apply(part)?;
            }
        }
        Ok((base, d))
    }

    /// Applies one `name` or `name=value` directive.
    fn apply(&mut self, directive: &str) -> Result<(), String> {
        let directive = directive.trim();
        if directive.is_empty() {
            return Ok(());
        }
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (directive, None),
        };
        let num = |what: &str| -> Result<u64, String> {
            value
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("mock directive `{what}` needs a non-negative integer"))
        };
        let ms = |what: &str| num(what).map(|v| Duration::from_millis(v).min(MAX_WAIT));
        match name {
            "latency" => self.latency = Some(ms(name)?),
            "ttfb" => self.ttfb = Some(ms(name)?),
            "gap" => self.gap = Some(ms(name)?),
            "chunks" => {
                let n = num(name)?;
                if n == 0 || n > MAX_CHUNKS as u64 {
                    return Err(format!("mock directive `chunks` must be 1..={MAX_CHUNKS}"));
                }
                self.chunks = Some(n as usize);
            }
            "status" => {
                let n = num(name)?;
                if !(400..=599).contains(&n) {
                    return Err("mock directive `status` must be 400..=599".to_string());
                }
                self.status = Some(n as u16);
            }
            "retry-after" => self.retry_after = Some(num(name)?),
            "cut" => self.cut = Some(num(name)? as usize),
            "stall" => self.stall = true,
            "stall-after" => self.stall_after = Some(num(name)? as usize),
            "tool" => {
                self.tool = Some(match value {
                    Some(v) if !v.is_empty() => ToolPick::Named(v.to_string()),
                    _ => ToolPick::First,
                })
            }
            "parallel" => {
                self.parallel = true;
                if self.tool.is_none() {
                    self.tool = Some(ToolPick::First);
                }
            }
            "think" => self.think = true,
            "cached" => self.cached = num(name)?,
            "echo-request" => self.echo = true,
            "echo-head" => self.echo_head = Some(String::new()),
            "leak" => self.leak = Some(String::new()),
            "fail-after" => self.fail_after = Some(num(name)? as usize),
            other => return Err(format!("unknown mock directive `{other}`")),
        }
        Ok(())
    }

    /// The number of text deltas a stream carries.
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.unwrap_or(DEFAULT_CHUNKS)
    }
}

/// What a `leak` request echoes: every credential header and the query
/// string, as received.
fn leak_text(uri: &Uri, headers: &HeaderMap) -> String {
    let mut parts: Vec<String> = CREDENTIAL_HEADERS
        .iter()
        .flat_map(|name| headers.get_all(*name).iter().map(move |v| (name, v)))
        .map(|(name, v)| format!("{name}={}", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    if let Some(q) = uri.query() {
        parts.push(format!("query={q}"));
    }
    parts.join("; ")
}

/// What an `echo-head` request answers: `{"path", "headers"}`, where
/// `path` has the query and credential header values read `[credential]`
/// (so that an echo does not put the key in a successful answer).
fn head_text(uri: &Uri, headers: &HeaderMap) -> String {
    let mut map = Map::new();
    for name in headers.keys() {
        let value = if CREDENTIAL_HEADERS.contains(&name.as_str()) {
            "[credential]".to_string()
        } else {
            headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        map.insert(name.as_str().to_string(), Value::String(value));
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    json!({"path": path, "headers": map}).to_string()
}

/// The message and code of an error the directives ask for: `what`, plus
/// the received credentials with `leak`, which also become the code (a
/// string `code` field, which not every API has, to test that every field
/// of an upstream error is kept from the client).
pub(crate) fn failure(d: &Directives, what: &str) -> (String, Option<String>) {
    match &d.leak {
        Some(leak) => (
            format!("mock upstream: {what}; received {leak}"),
            Some(leak.clone()),
        ),
        None => (format!("mock upstream: {what}"), None),
    }
}

/// What the request's last turn was, for the default reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LastTurn {
    /// A user message with this text.
    User(String),
    /// A tool result with this text.
    ToolResult(String),
}

/// The reply text: the echoed body, or the default greeting.
pub(crate) fn reply_text(api: &str, d: &Directives, body: &[u8], last: &LastTurn) -> String {
    if let Some(head) = &d.echo_head {
        return head.clone();
    }
    if d.echo {
        return String::from_utf8_lossy(body).into_owned();
    }
    match last {
        LastTurn::User(text) => format!("Hello from the mock {api} upstream. You said: {text}"),
        LastTurn::ToolResult(text) => format!("Tool result received: {text}"),
    }
}

/// Text of a content value that is either a string or an array of parts
/// with a `text` field (any part type that carries text).
pub(crate) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p {
                Value::String(s) => Some(s.as_str()),
                _ => p.get("text").and_then(Value::as_str),
            })
            .collect::<Vec<_>>()
            .join(""),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A tool declared in the request.
#[derive(Debug, Clone)]
pub(crate) struct ToolDef {
    pub name: String,
    pub schema: Option<Value>,
}

/// A tool call the mock makes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCall {
    pub name: String,
    pub args: Value,
}

impl ToolCall {
    /// The arguments as compact JSON text.
    pub(crate) fn args_text(&self) -> String {
        self.args.to_string()
    }
}

/// The tool calls the directives ask for (empty without `tool`).
pub(crate) fn plan_tool_calls(d: &Directives, tools: &[ToolDef]) -> Result<Vec<ToolCall>, String> {
    let Some(pick) = &d.tool else {
        return Ok(Vec::new());
    };
    let call = |t: &ToolDef| ToolCall {
        name: t.name.clone(),
        args: sample_args(t.schema.as_ref()),
    };
    match pick {
        ToolPick::First => {
            let first = tools.first().ok_or_else(|| {
                "mock directive `tool` needs at least one tool in the request".to_string()
            })?;
            let mut calls = vec![call(first)];
            if d.parallel {
                calls.push(call(tools.get(1).unwrap_or(first)));
            }
            Ok(calls)
        }
        ToolPick::Named(name) => {
            let c = match tools.iter().find(|t| &t.name == name) {
                Some(t) => call(t),
                None => ToolCall {
                    name: name.clone(),
                    args: json!({}),
                },
            };
            let n = if d.parallel { 2 } else { 1 };
            Ok(vec![c; n])
        }
    }
}

/// Arguments built from a JSON schema: each required property gets a sample
/// value of its type (an `enum` gives its first value).
pub(crate) fn sample_args(schema: Option<&Value>) -> Value {
    let mut out = Map::new();
    let Some(schema) = schema else {
        return Value::Object(out);
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let required = schema.get("required").and_then(Value::as_array);
    if let (Some(props), Some(required)) = (props, required) {
        for name in required.iter().filter_map(Value::as_str) {
            let prop = props.get(name).unwrap_or(&Value::Null);
            out.insert(name.to_string(), sample_value(prop));
        }
    }
    Value::Object(out)
}

fn sample_value(prop: &Value) -> Value {
    if let Some(first) = prop
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return first.clone();
    }
    let ty = match prop.get("type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_ascii_lowercase(),
        _ => "string".to_string(),
    };
    match ty.as_str() {
        "number" | "integer" => json!(1),
        "boolean" => json!(true),
        "array" => json!([]),
        "object" => json!({}),
        "null" => Value::Null,
        _ => json!("sample"),
    }
}

/// Splits `text` into exactly `n` non-empty pieces whose concatenation is
/// `text`: on word boundaries when there are enough words, else on character
/// boundaries. When `text` is shorter than `n` characters, words are appended
/// (so the streamed text is then longer than `text`).
pub(crate) fn split_pieces(text: &str, n: usize) -> Vec<String> {
    let n = n.max(1);
    // Word starts: a non-space after a space or the start.
    let mut starts = Vec::new();
    let mut prev_space = true;
    for (i, c) in text.char_indices() {
        if !c.is_whitespace() && prev_space {
            starts.push(i);
        }
        prev_space = c.is_whitespace();
    }
    if starts.len() >= n {
        let mut cuts: Vec<usize> = (1..n).map(|k| starts[k * starts.len() / n]).collect();
        cuts.insert(0, 0);
        cuts.push(text.len());
        return cuts
            .windows(2)
            .map(|w| text[w[0]..w[1]].to_string())
            .collect();
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    if chars.len() >= n {
        let mut cuts: Vec<usize> = (1..n).map(|k| chars[k * chars.len() / n].0).collect();
        cuts.insert(0, 0);
        cuts.push(text.len());
        return cuts
            .windows(2)
            .map(|w| text[w[0]..w[1]].to_string())
            .collect();
    }
    let mut pieces: Vec<String> = chars.iter().map(|(_, c)| c.to_string()).collect();
    const PAD: [&str; 5] = ["lorem", "ipsum", "dolor", "sit", "amet"];
    let mut k = 0;
    while pieces.len() < n {
        let word = PAD[k % PAD.len()];
        pieces.push(if pieces.is_empty() {
            word.to_string()
        } else {
            format!(" {word}")
        });
        k += 1;
    }
    pieces
}

/// Splits tool-call arguments into two non-empty fragments (one if the text
/// has a single character).
pub(crate) fn split_args(args: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = args.char_indices().collect();
    if chars.len() < 2 {
        return vec![args.to_string()];
    }
    let mid = chars[chars.len() / 2].0;
    vec![args[..mid].to_string(), args[mid..].to_string()]
}

/// Whitespace-separated words of `text`.
pub(crate) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The token counts of one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// `ceil(request body bytes / 4)`: the uncached input.
    pub input: u64,
    /// Words of the reply text, plus `ceil(len / 4)` per tool call's
    /// arguments, plus the reasoning tokens.
    pub output: u64,
    /// Words of the reasoning text (0 without `think`).
    pub reasoning: u64,
    /// The `cached=N` tokens.
    pub cached: u64,
}

impl Usage {
    /// Computes the usage of a reply.
    pub(crate) fn compute(
        body_len: usize,
        d: &Directives,
        text: &str,
        calls: &[ToolCall],
    ) -> Usage {
        let reasoning = if d.think {
            word_count(THINKING_TEXT)
        } else {
            0
        };
        let args: u64 = calls
            .iter()
            .map(|c| (c.args_text().len() as u64).div_ceil(4))
            .sum();
        Usage {
            input: input_tokens(body_len),
            output: word_count(text) + args + reasoning,
            reasoning,
            cached: d.cached,
        }
    }
}

/// `ceil(bytes / 4)`.
pub(crate) fn input_tokens(body_len: usize) -> u64 {
    (body_len as u64).div_ceil(4)
}

/// RFC 3339 (UTC, seconds) for a Unix time.
pub(crate) fn rfc3339(unix: u64) -> String {
    let d = i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(model: &str, header: Option<&str>) -> Result<(String, Directives), String> {
        let mut h = HeaderMap::new();
        if let Some(v) = header {
            h.insert("x-mock", axum::http::HeaderValue::from_str(v).unwrap());
        }
        Directives::from_request(model, &Uri::from_static("/v1/x?q=1"), &h)
            .map(|(b, d)| (b.to_string(), d))
    }

    #[test]
    fn directives_from_model_and_header() {
        let (base, d) = parse("gpt-4o~status=429~retry-after=2", None).unwrap();
        assert_eq!(base, "gpt-4o");
        assert_eq!(d.status, Some(429));
        assert_eq!(d.retry_after, Some(2));
        let (base, d) = parse("claude~chunks=20", Some("gap=5;tool=get_weather;think")).unwrap();
        assert_eq!(base, "claude");
        assert_eq!(d.chunks, Some(20));
        assert_eq!(d.gap, Some(Duration::from_millis(5)));
        assert_eq!(d.tool, Some(ToolPick::Named("get_weather".into())));
        assert!(d.think);
        let (_, d) = parse("m~tool~parallel~cached=7~echo-request~stall", None).unwrap();
        assert_eq!(d.tool, Some(ToolPick::First));
        assert!(d.parallel && d.echo && d.stall);
        assert_eq!(d.cached, 7);
    }

    #[test]
    fn bad_directives_are_errors() {
        assert!(parse("m~bogus", None).unwrap_err().contains("bogus"));
        assert!(parse("m~status=abc", None).is_err());
        assert!(parse("m~status=200", None).is_err());
        assert!(parse("m~chunks=0", None).is_err());
        let (_, d) = parse("m~latency=99999999", None).unwrap();
        assert_eq!(d.latency, Some(MAX_WAIT));
    }

    #[test]
    fn split_pieces_keeps_text_and_count() {
        let text = "Hello from the mock openai upstream. You said: hi";
        for n in 1..=12 {
            let p = split_pieces(text, n);
            assert_eq!(p.len(), n, "n={n}");
            assert!(p.iter().all(|s| !s.is_empty()));
            if n <= 12 {
                assert_eq!(p.concat(), text);
            }
        }
        let p = split_pieces("{\"a\":1}", 3);
        assert_eq!(p.concat(), "{\"a\":1}");
        let p = split_pieces("ab", 4);
        assert_eq!(p, vec!["a", "b", " lorem", " ipsum"]);
        let p = split_pieces("", 2);
        assert_eq!(p, vec!["lorem", " ipsum"]);
    }

    #[test]
    fn sample_args_from_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "tags": {"type": "array"},
                "opts": {"type": "object"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "maybe": {"type": ["null", "number"]},
                "optional": {"type": "string"}
            },
            "required": ["city", "days", "metric", "tags", "opts", "unit", "maybe"]
        });
        assert_eq!(
            sample_args(Some(&schema)),
            json!({"city": "sample", "days": 1, "metric": true, "tags": [], "opts": {},
                   "unit": "c", "maybe": 1})
        );
        let gemini =
            json!({"type": "OBJECT", "properties": {"q": {"type": "STRING"}}, "required": ["q"]});
        assert_eq!(sample_args(Some(&gemini)), json!({"q": "sample"}));
        assert_eq!(sample_args(None), json!({}));
    }

    #[test]
    fn tool_plans() {
        let tools = vec![
            ToolDef {
                name: "a".into(),
                schema: None,
            },
            ToolDef {
                name: "b".into(),
                schema: None,
            },
        ];
        let (_, d) = parse("m~tool~parallel", None).unwrap();
        let names: Vec<_> = plan_tool_calls(&d, &tools)
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let (_, d) = parse("m~tool=b~parallel", None).unwrap();
        let names: Vec<_> = plan_tool_calls(&d, &tools)
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["b", "b"]);
        let (_, d) = parse("m~tool", None).unwrap();
        assert!(plan_tool_calls(&d, &[]).is_err());
        let (_, d) = parse("m", None).unwrap();
        assert!(plan_tool_calls(&d, &tools).unwrap().is_empty());
    }

    #[test]
    fn usage_and_rfc3339() {
        let (_, d) = parse("m~think~cached=3", None).unwrap();
        let u = Usage::compute(9, &d, "one two three", &[]);
        assert_eq!(u.input, 3);
        assert_eq!(u.reasoning, word_count(THINKING_TEXT));
        assert_eq!(u.output, 3 + u.reasoning);
        assert_eq!(u.cached, 3);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(split_args("{}"), vec!["{", "}"]);
    }
}

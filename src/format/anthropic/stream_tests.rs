use super::*;
use crate::canonical::FinishReason;
use crate::error::ErrorKind;
use crate::sse::SseParser;
use serde_json::json;

/// Feeds `input` in pieces of `piece` bytes; returns the events and the first error.
fn run(input: &[u8], piece: usize) -> (Vec<StreamEvent>, Result<(), GatewayError>) {
    let mut parser = SseParser::new();
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for chunk in input.chunks(piece) {
        let mut sse = Vec::new();
        parser.feed(chunk, &mut sse);
        for ev in &sse {
            if let Err(e) = dec.event(ev, &mut out) {
                return (out, Err(e));
            }
        }
    }
    if let Some(ev) = parser.finish() {
        if let Err(e) = dec.event(&ev, &mut out) {
            return (out, Err(e));
        }
    }
    let r = dec.end(&mut out);
    (out, r)
}

const STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":1,\"cache_creation\":{\"ephemeral_5m_input_tokens\":40,\"ephemeral_1h_input_tokens\":60}}}}\n\n",
    "event: ping\n",
    "data: {\"type\": \"ping\"}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Need the \\u00e9t\u{e9} weather.\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM==\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me \"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"check.\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"}\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":87}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

fn expected() -> Vec<StreamEvent> {
    use StreamEvent::*;
    vec![
        Start {
            id: "msg_01".into(),
            model: "claude-sonnet-4-5".into(),
        },
        BlockStart {
            index: 0,
            block: BlockKind::Reasoning,
        },
        Delta {
            index: 0,
            delta: crate::canonical::Delta::Reasoning("Need the été weather.".into()),
        },
        Delta {
            index: 0,
            delta: crate::canonical::Delta::Signature("EqQBCgIYAhIM==".into()),
        },
        BlockStop { index: 0 },
        BlockStart {
            index: 1,
            block: BlockKind::Text,
        },
        Delta {
            index: 1,
            delta: crate::canonical::Delta::Text("Let me ".into()),
        },
        Delta {
            index: 1,
            delta: crate::canonical::Delta::Text("check.".into()),
        },
        BlockStop { index: 1 },
        BlockStart {
            index: 2,
            block: BlockKind::ToolCall {
                id: "toolu_01".into(),
                name: "get_weather".into(),
            },
        },
        Delta {
            index: 2,
            delta: crate::canonical::Delta::ToolArguments("{\"city\": ".into()),
        },
        Delta {
            index: 2,
            delta: crate::canonical::Delta::ToolArguments("\"Paris\"".into()),
        },
        Delta {
            index: 2,
            delta: crate::canonical::Delta::ToolArguments("}".into()),
        },
        BlockStop { index: 2 },
        Finish {
            reason: FinishReason::ToolCalls,
            usage: crate::canonical::Usage {
                input_tokens: 2112,
                output_tokens: 87,
                cache_read_tokens: 2000,
                cache_write_tokens: 100,
                reasoning_tokens: 0,
                cache_write_1h_tokens: 60,
            },
        },
    ]
}

#[test]
fn decodes_a_realistic_stream_split_anywhere() {
    let input = STREAM.as_bytes();
    for piece in [1, 2, 3, 7, 13, 64, 500, input.len()] {
        let (events, r) = run(input, piece);
        assert!(r.is_ok(), "piece {piece}: {r:?}");
        assert_eq!(events, expected(), "piece {piece}");
    }
}

#[test]
fn server_tool_blocks_are_skipped_without_index_gaps() {
    let input = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":5,\"output_tokens\":0}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_1\",\"name\":\"web_search\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"query\\\":\\\"x\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_1\",\"content\":[]}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"citations_delta\",\"citation\":{\"type\":\"web_search_result_location\"}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"Found it.\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"opaque\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":3}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"END\"},\"usage\":{\"input_tokens\":6,\"cache_read_input_tokens\":10,\"output_tokens\":9}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    let (events, r) = run(input.as_bytes(), 17);
    r.unwrap();
    assert_eq!(
        events,
        vec![
            StreamEvent::Start {
                id: "m".into(),
                model: "c".into()
            },
            StreamEvent::BlockStart {
                index: 0,
                block: BlockKind::Text
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::Text("Found it.".into())
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart {
                index: 1,
                block: BlockKind::RedactedReasoning {
                    data: "opaque".into()
                }
            },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::Finish {
                reason: FinishReason::StopSequence(Some("END".into())),
                usage: Usage {
                    input_tokens: 16,
                    output_tokens: 9,
                    cache_read_tokens: 10,
                    cache_write_tokens: 0,
                    reasoning_tokens: 0,
                    cache_write_1h_tokens: 0,
                }
            },
        ]
    );
}

#[test]
fn a_cut_stream_fails_at_end_without_inventing_a_finish() {
    let cut = STREAM.find("event: message_delta").unwrap();
    let (events, r) = run(&STREAM.as_bytes()[..cut], 10);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse);
    assert_eq!(e.message(), "stream ended before completion");
    assert!(!events
        .iter()
        .any(|e| matches!(e, StreamEvent::Finish { .. })));
    // message_delta alone is not completion either.
    let cut = STREAM.find("event: message_stop").unwrap();
    let (_, r) = run(&STREAM.as_bytes()[..cut], 10);
    assert!(r.is_err());
}

#[test]
fn an_error_event_mid_stream_is_an_error_of_its_kind() {
    let cut = STREAM.find("event: content_block_start").unwrap();
    let mut input = STREAM[..cut].to_string();
    input.push_str("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
    let (events, r) = run(input.as_bytes(), 5);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert_eq!(e.message(), "Overloaded");
    assert!(e.is_retryable());
    assert_eq!(events.len(), 1);

    let mut input = STREAM[..cut].to_string();
    input.push_str("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n");
    assert_eq!(
        run(input.as_bytes(), 5).1.unwrap_err().kind(),
        ErrorKind::RateLimited
    );
}

#[test]
fn garbage_events_are_bad_upstream() {
    let (_, r) = run(b"event: message_start\ndata: {nope\n\n", 4);
    assert_eq!(r.unwrap_err().kind(), ErrorKind::BadUpstreamResponse);
    let (_, r) = run(
        b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\"}}\n\n",
        4,
    );
    assert_eq!(r.unwrap_err().kind(), ErrorKind::BadUpstreamResponse);
}

fn encode_all(events: &[StreamEvent]) -> BytesMut {
    let mut enc = StreamEncoder::new();
    let mut out = BytesMut::new();
    for e in events {
        enc.event(e, &mut out);
    }
    out
}

#[test]
fn encoder_output_decodes_back_to_the_same_events() {
    let out = encode_all(&expected());
    for piece in [1, 9, out.len()] {
        let (events, r) = run(&out, piece);
        r.unwrap();
        assert_eq!(events, expected(), "piece {piece}");
    }
}

#[test]
fn encoder_writes_what_the_sdks_parse() {
    let out = encode_all(&expected());
    let mut parser = SseParser::new();
    let mut sse = Vec::new();
    parser.feed(&out, &mut sse);
    let names: Vec<&str> = sse.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    let data: Vec<Value> = sse
        .iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    for (name, d) in names.iter().zip(&data) {
        assert_eq!(d["type"], *name);
    }
    assert_eq!(
        data[0],
        json!({"type": "message_start", "message": {
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
    );
    assert_eq!(
        data[1],
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
    );
    assert_eq!(
        data[3],
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM=="}})
    );
    let tool_start = data
        .iter()
        .find(|d| d["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(
        tool_start["content_block"],
        json!({"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}})
    );
    assert_eq!(
        data[data.len() - 2],
        json!({"type": "message_delta",
               "delta": {"stop_reason": "tool_use", "stop_sequence": null},
               "usage": {"input_tokens": 12, "output_tokens": 87,
                         "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000,
                         "cache_creation": {"ephemeral_5m_input_tokens": 40,
                                            "ephemeral_1h_input_tokens": 60}}})
    );
    assert_eq!(data[data.len() - 1], json!({"type": "message_stop"}));
}

#[test]
fn encoder_error_event() {
    let mut enc = StreamEncoder::new();
    let mut out = BytesMut::new();
    enc.error(
        &GatewayError::new(ErrorKind::Overloaded, "busy upstream"),
        &mut out,
    );
    let text = std::str::from_utf8(&out).unwrap();
    assert!(text.starts_with("event: error\ndata: "), "{text}");
    assert!(text.ends_with("\n\n"));
    let (_, r) = run(&out, 3);
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert_eq!(e.message(), "busy upstream");
}

#[test]
fn decodes_unnamed_events_a_filled_tool_input_and_null_counts() {
    // No `event:` lines: the kind comes from `type`. Events the decoder does
    // not read are skipped whatever their data.
    let input = concat!(
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":null,\"output_tokens\":1}}}\n\n",
        "event: some_future_event\ndata: [1, \"x\"]\n\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{\"b\": 1, \"a\": [\"\\u00e9\"]}}}\n\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7,\"cache_read_input_tokens\":null}}\n\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    let (events, r) = run(input.as_bytes(), 11);
    r.unwrap();
    assert_eq!(
        events,
        vec![
            StreamEvent::Start {
                id: "m".into(),
                model: "c".into()
            },
            StreamEvent::BlockStart {
                index: 0,
                block: BlockKind::ToolCall {
                    id: "t".into(),
                    name: "f".into()
                }
            },
            StreamEvent::Delta {
                index: 0,
                delta: Delta::ToolArguments(r#"{"a":["é"],"b":1}"#.into())
            },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: Usage {
                    input_tokens: 5,
                    output_tokens: 7,
                    ..Usage::default()
                }
            },
        ]
    );
}

#[test]
fn a_field_of_the_wrong_type_is_bad_upstream() {
    let cut = STREAM.find("event: content_block_start").unwrap();
    let mut input = STREAM[..cut].to_string();
    input.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":\"0\",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    let e = run(input.as_bytes(), 64).1.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadUpstreamResponse);
    assert!(
        e.message()
            .starts_with("Anthropic `content_block_start` event is malformed"),
        "{}",
        e.message()
    );
    let mut input = STREAM[..cut].to_string();
    input.push_str("event: content_block_delta\ndata: {\"type\":\n\n");
    let e = run(input.as_bytes(), 64).1.unwrap_err();
    assert!(
        e.message()
            .starts_with("Anthropic stream event is not JSON"),
        "{}",
        e.message()
    );
}

#[test]
fn encoder_writes_each_event_in_the_api_field_order() {
    let events = [
        StreamEvent::Start {
            id: "msg_1".into(),
            model: "m".into(),
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::Text,
        },
        StreamEvent::Delta {
            index: 0,
            delta: Delta::Text("say \"hi\"\n".into()),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::BlockStart {
            index: 1,
            block: BlockKind::RedactedReasoning { data: "x".into() },
        },
        StreamEvent::Delta {
            index: 1,
            delta: Delta::Reasoning("r".into()),
        },
        StreamEvent::Delta {
            index: 1,
            delta: Delta::ToolArguments("{}".into()),
        },
        StreamEvent::BlockStop { index: 1 },
        StreamEvent::Finish {
            reason: FinishReason::StopSequence(Some("END".into())),
            usage: Usage {
                input_tokens: 30,
                output_tokens: 2,
                cache_read_tokens: 20,
                cache_write_tokens: 4,
                reasoning_tokens: 0,
                cache_write_1h_tokens: 0,
            },
        },
    ];
    let out = encode_all(&events);
    let want = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"say \"hi\"\n"}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"x"}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"r"}}"#,
        "\n\nevent: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
        "\n\nevent: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":1}"#,
        "\n\nevent: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"usage":{"input_tokens":6,"cache_creation_input_tokens":4,"cache_read_input_tokens":20,"output_tokens":2}}"#,
        "\n\nevent: message_stop\n",
        r#"data: {"type":"message_stop"}"#,
        "\n\n",
    );
    assert_eq!(std::str::from_utf8(&out).unwrap(), want);
}

/// Found by the `stream_anthropic` fuzz target: a delta for a block that
/// has stopped, or of another kind than its block, went to the client as
/// part of another block (text inside a tool call's arguments).
#[test]
fn a_delta_outside_its_open_block_is_bad_upstream() {
    let start = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n",
    );
    for (delta, says) in [
        (
            "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"late\"}}",
            "after it stopped",
        ),
        (
            "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"not args\"}}",
            "of another kind",
        ),
    ] {
        let input = format!("{start}event: content_block_delta\ndata: {delta}\n\n");
        let (events, res) = run(input.as_bytes(), 7);
        let err = res.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadUpstreamResponse, "{delta}");
        assert!(err.message().contains(says), "{}", err.message());
        assert!(
            !events.iter().any(|e| matches!(e, StreamEvent::Delta { .. })),
            "{events:?}"
        );
    }
}

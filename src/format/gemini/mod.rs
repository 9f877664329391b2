//! Google Gemini `generateContent` (provider side, the Gemini API at
//! `generativelanguage.googleapis.com/v1beta`).
//!
//! [`encode_request`] and [`encode_count_tokens`] write request bodies (the
//! model travels in the URL), [`decode_response`] and [`StreamDecoder`]
//! read `generateContent` answers and `streamGenerateContent?alt=sse`
//! streams.
//!
//! Choices and what the translation drops, knowingly:
//!
//! - **Schemas.** Tool parameters are sent as `parametersJsonSchema` and
//!   structured output as `responseJsonSchema`: both take JSON Schema as
//!   is, whereas `parameters` / `responseSchema` take an OpenAPI subset whose
//!   parser rejects the whole request on keys such as `additionalProperties`,
//!   `const` or `$schema`. A top-level `$schema` is removed anyway. Models
//!   older than Gemini 2.5 do not know these fields.
//! - **Tool call IDs.** Gemini matches function responses to calls by name
//!   and order; some deployments reject an `id` on `functionCall` /
//!   `functionResponse` ("Unknown name \"id\""), so none is sent. The
//!   function's name, which Gemini needs in `functionResponse`, is looked up
//!   from the earlier tool call with the same ID; a tool result whose call is
//!   not in the conversation is sent as plain text. Calls in answers get
//!   Gemini's ID when it sends one, else a fresh random `call_<32 hex>`:
//!   numbering them per answer would repeat IDs across turns, which clients
//!   keyed by ID and Anthropic refuse. Images in tool results
//!   follow the `functionResponse` as separate `inlineData` / `fileData`
//!   parts. `is_error` results use the documented `error` key instead of
//!   `output`.
//! - **Thought signatures.** Canonical tool calls carry no Gemini
//!   `thoughtSignature`, and Gemini 3 refuses replayed function calls
//!   without one, so the first function call of each model turn carries the
//!   documented `skip_thought_signature_validator` value. Reasoning parts in
//!   the history (and their Anthropic signatures) are dropped: they cannot be
//!   replayed to Gemini. Signatures in answers are dropped too.
//! - **Reasoning settings.** `budget_tokens` becomes `thinkingBudget`;
//!   `effort` becomes a budget (minimal 512, low 1024, medium 8192, high and
//!   above 24576, unknown: dynamic `-1`), which Gemini 3 accepts alongside
//!   `thinkingLevel`; disabled becomes budget 0. `includeThoughts` is set
//!   whenever thinking is on, and thought parts are decoded as reasoning.
//! - **Images.** Inline images become `inlineData`; URL images become
//!   `fileData` with a MIME type guessed from the extension (JPEG when
//!   unknown). Gemini fetches Files API URIs and, on recent models, public
//!   HTTP(S) URLs; other URLs fail upstream.
//! - **Finish reasons** are mapped by an explicit table (see
//!   `finish_reason`): a function call Gemini failed to produce
//!   (`MALFORMED_FUNCTION_CALL`, `UNEXPECTED_TOOL_CALL`, `TOO_MANY_TOOL_CALLS`,
//!   ...) is a retryable 502 naming the reason and Gemini's
//!   `finishMessage`, never a tool-calls finish without calls; `OTHER` and
//!   unknown values are kept by name and reach clients as a normal stop.
//! - **Tool call arguments** are parsed into `args`; arguments that are not
//!   a JSON object become `{}`.
//! - **Not expressible:** `parallel_tool_calls`, `user`, `cache_control`,
//!   tool `strict`, a mid-conversation system message's role (its text is
//!   folded into a user turn). Answer parts other than text, thoughts and
//!   function calls (inline images, code execution) are dropped.

mod request;
mod response;
mod stream;

pub use request::{encode_count_tokens, encode_request};
pub use response::decode_response;
pub use stream::StreamDecoder;

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::format::responses;
    use crate::json::RawObject;

    /// A Responses client talking to Gemini across two turns: the call ID
    /// Gemini's answer gets comes back with the tool output, and the Gemini
    /// request names the function from it.
    #[test]
    fn responses_client_tool_round_trip_through_gemini() {
        let answer = json!({
            "candidates": [{ "content": { "role": "model", "parts": [
                { "text": "Checking." },
                { "functionCall": { "name": "weather", "args": { "city": "Paris" } } }
            ]}, "finishReason": "STOP" }],
            "usageMetadata": { "promptTokenCount": 5, "candidatesTokenCount": 3 }
        });
        let resp =
            super::decode_response(&serde_json::to_vec(&answer).unwrap(), "gemini-x").unwrap();
        let client_view: Value =
            serde_json::from_slice(&responses::encode_response(&resp)).unwrap();
        let output = client_view["output"].as_array().unwrap().clone();
        assert_eq!(output[1]["type"], "function_call");
        let call_id = output[1]["call_id"].as_str().unwrap().to_string();

        // The client replays the output items and adds the tool's output.
        let mut input = vec![json!({ "role": "user", "content": "Weather in Paris?" })];
        input.extend(output);
        input.push(json!({ "type": "function_call_output", "call_id": call_id, "output": "18C" }));
        let body = json!({ "model": "gemini-x", "input": input,
                           "tools": [{ "type": "function", "name": "weather",
                                       "parameters": { "type": "object" } }] });
        let req = responses::decode_request(
            &RawObject::parse(&serde_json::to_vec(&body).unwrap()).unwrap(),
        )
        .unwrap();
        let gemini: Value = serde_json::from_slice(&super::encode_request(&req)).unwrap();
        assert_eq!(
            gemini["contents"],
            json!([
                { "role": "user", "parts": [{ "text": "Weather in Paris?" }] },
                { "role": "model", "parts": [
                    { "text": "Checking." },
                    { "functionCall": { "name": "weather", "args": { "city": "Paris" } },
                      "thoughtSignature": "skip_thought_signature_validator" }
                ]},
                { "role": "user", "parts": [
                    { "functionResponse": { "name": "weather", "response": { "output": "18C" } } }
                ]}
            ])
        );
    }
}

//! OpenAI Responses (client side; a Responses provider is only used for
//! same-format pass-through, which never reaches this module).
//!
//! [`decode_request`] turns a `/v1/responses` body into a canonical request,
//! [`encode_response`] and [`StreamEncoder`] render a canonical answer as a
//! Response object or as the Responses event stream (`event:` lines, a
//! `sequence_number` on every event).
//!
//! What the translation drops or refuses, knowingly:
//!
//! - **Server state.** tollgate keeps no responses: `previous_response_id`,
//!   `conversation`, `prompt` (stored prompt templates), `background: true`
//!   and `item_reference` input items are refused with a 400 asking for the
//!   full input. `store`, `metadata`, `include`, `truncation`,
//!   `service_tier`, `prompt_cache_key`, `max_tool_calls`, `top_logprobs`,
//!   `text.verbosity` and `reasoning.summary` are ignored.
//! - **Built-in tools** (`web_search`, `file_search`, `computer_use_preview`,
//!   `code_interpreter`, `image_generation`, `mcp`, `local_shell`, `custom`,
//!   ...) run inside OpenAI and have no equivalent at other providers: they
//!   are dropped from `tools` and the model simply does not see them. A
//!   `tool_choice` that forces one of them is a 400. Their call items in the
//!   input history (`web_search_call`, ...) are a 400 as well.
//! - **Files.** `input_file` parts and `input_image` parts given by
//!   `file_id` refer to OpenAI-hosted files: 400.
//! - **Function tools** are strict unless `strict: false` (the Responses
//!   API's default, the opposite of Chat Completions'), so a tool without
//!   `strict` reaches a Chat Completions provider with `strict: true`.
//! - **Dropped from the input**, having no canonical form: an
//!   `input_image`'s `detail`; the `id` and `status` of every item (the
//!   gateway keeps no items to refer to); `annotations` and `logprobs` of
//!   `output_text` parts; a `text.format` JSON schema's `description`;
//!   `stream_options`, `prompt_cache_retention`; `safety_identifier` when
//!   `user` is also set (`user` is kept).
//! - **Reasoning items.** In answers, reasoning becomes a reasoning item
//!   whose summary is its text; Anthropic's signature, or its redacted
//!   (encrypted) thinking as an item without summary, travels in the item's
//!   `encrypted_content`, marked as the gateway's (`tollgate.anthropic.*`),
//!   and comes back from the input's reasoning items, so that tool loops
//!   with thinking keep working at Anthropic. In the input, a reasoning
//!   item keeps its summary text (or its `reasoning_text` content) as
//!   [`Part::Reasoning`](crate::canonical::Part::Reasoning); OpenAI's own
//!   `encrypted_content` can only be read by OpenAI and is dropped (an item
//!   with nothing else is dropped whole). The other way round, an OpenAI
//!   provider's pass-through leaves the gateway's own reasoning items out
//!   of the input (`provider/openai.rs`), since OpenAI cannot read them.
//! - **Finish reasons.** A length reason is `incomplete` with
//!   `max_output_tokens`, a refusal or filter `incomplete` with
//!   `content_filter`; every other reason (a stop sequence, Anthropic's
//!   `pause_turn`, a reason no provider decoder knows) is `completed`.
//! - **Answer fields we cannot know** are reported with neutral values:
//!   `tools: []`, `tool_choice: "auto"`, `instructions: null`,
//!   `temperature`/`top_p: null`, `metadata: {}`. `output_text` is not sent:
//!   the official SDKs compute it from `output`.
//! - **Stream errors** after the first byte are sent as an `error` event
//!   followed by `response.failed` (the OpenAI SDKs yield both; the Vercel
//!   AI SDK and Codex end the stream on either).

mod input;
mod request;
mod response;
mod stream;

pub use request::decode_request;
pub use response::encode_response;
pub(crate) use response::GATEWAY_PREFIX as GATEWAY_REASONING_PREFIX;
pub use stream::StreamEncoder;

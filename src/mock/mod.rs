//! The mock upstream: a stand-in for OpenAI, Anthropic and Gemini that
//! every test and benchmark uses.

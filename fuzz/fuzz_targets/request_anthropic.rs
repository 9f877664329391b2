#![no_main]
//! An Anthropic Messages request body, from the edge to every provider's encoding.

use libfuzzer_sys::fuzz_target;
use tollgate::fuzzing;
use tollgate::WireFormat;

fuzz_target!(|data: &[u8]| fuzzing::request(WireFormat::Anthropic, data));

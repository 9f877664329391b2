#![no_main]
//! An Anthropic Messages stream, decoded and encoded for every client format.

use libfuzzer_sys::fuzz_target;
use tollgate::fuzzing;
use tollgate::WireFormat;

fuzz_target!(|data: &[u8]| fuzzing::stream(WireFormat::Anthropic, data));

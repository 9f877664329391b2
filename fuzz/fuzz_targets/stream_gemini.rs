#![no_main]
//! A Gemini streamGenerateContent stream, decoded and encoded for every client format.

use libfuzzer_sys::fuzz_target;
use tollgate::fuzzing;
use tollgate::WireFormat;

fuzz_target!(|data: &[u8]| fuzzing::stream(WireFormat::Gemini, data));

#![no_main]
//! A provider's complete (non-stream) answer in each provider format,
//! decoded and encoded for every client format.

use libfuzzer_sys::fuzz_target;
use tollgate::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::response(data));

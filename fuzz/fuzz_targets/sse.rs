#![no_main]
//! The SSE parser: split anywhere, it must read what it reads whole.

use libfuzzer_sys::fuzz_target;
use tollgate::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::sse(data));

#![no_main]
//! A provider's error answer (format, status, headers, body).

use libfuzzer_sys::fuzz_target;
use tollgate::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::upstream_error(data));

#![no_main]
//! A config file, as check-config and serve read it.

use libfuzzer_sys::fuzz_target;
use tollgate::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::config(data));

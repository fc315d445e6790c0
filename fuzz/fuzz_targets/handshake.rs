//! Fuzz target: the server side of a handshake, fed in chunks, and response decoding.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| akkord_remote::fuzzing::handshake_input(data));

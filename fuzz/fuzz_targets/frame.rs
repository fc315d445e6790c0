//! Fuzz target: a connection's preamble and frames after the handshake.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| akkord_remote::fuzzing::frame_input(data));

//! One received datagram or stream chunk, as the media node reads it before the
//! transaction layer: guard, parser and checks, TCP framer, registrar header parsing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dialtone_fuzz::sip_message(data));

//! A sequence of datagrams, stream frames, TU calls and clock advances fed to one
//! `TransactionLayer` (see `dialtone_fuzz::transaction_layer` for the input format).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dialtone_fuzz::transaction_layer(data));

//! Shared pieces of Dialtone's benchmarks: the echo ceiling and latency statistics.
//!
//! Benchmarks are binaries (`cargo run --release -p dialtone-bench --bin …`), not tests: they
//! measure, they assert nothing, and they always run the peer or ceiling in the same process
//! and run so that ratios stay meaningful on a shared, noisy machine.

pub mod echo {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("dialtone.bench");
}

pub mod call_events;
pub mod load;
pub mod synth;

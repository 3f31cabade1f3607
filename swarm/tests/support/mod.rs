//! Shared harness for the hardening tests (hostile peers, lossy links): a
//! simulated network under the sans-I/O swarm core with a virtual clock, a
//! raw quinn-proto peer, hostile TLS material, a bulk-transfer plugin and a
//! log capture.
#![allow(dead_code)]

pub mod bulk;
pub mod certs;
pub mod logs;
pub mod net;
pub mod raw;

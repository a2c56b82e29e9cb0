//! `scion-emu`: a SCION network on one machine, for tests, benchmarks and the demo.
//!
//! Border routers are UDP sockets on loopback that forward real SCION packets hop by hop
//! (MACs checked with per-AS keys), each AS has a daemon speaking sciond's gRPC API, and links
//! can be shaped, cut (SCMP-signalled) or blackholed at run time.

pub mod forward;
pub mod topo;

//! sixmap probe: measures IPv6 and reports to a collector over one outbound gRPC session.

pub mod backoff;
pub mod clock;
pub mod collector_tls;
pub mod config;
pub mod delivery;
pub mod dns;
pub mod dualstack;
pub mod engine;
pub mod exthdr;
pub mod http;
pub mod identity;
pub mod outbox;
pub mod ping;
pub mod pmtu;
pub mod quic;
pub mod rawnet;
pub mod safety;
pub mod scheduler;
pub mod selftest;
pub mod session;
pub mod setup;
pub mod status;
pub mod tcp;
pub mod tls;
pub mod traceroute;
pub mod trust;

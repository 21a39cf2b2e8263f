//! sixmap probe: measures IPv6 and reports to a collector over one outbound gRPC session.

pub mod backoff;
pub mod batching;
pub mod clock;
pub mod config;
pub mod engine;
pub mod identity;
pub mod ping;
pub mod scheduler;
pub mod session;

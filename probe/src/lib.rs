//! sixmap probe: measures IPv6 and reports to a collector over one outbound gRPC session.

pub mod ping;

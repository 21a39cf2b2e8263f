//! tcp measurement (placeholder until its module lands).

use crate::engine::{Context, failure};
use sixmap_shared::measurement::{ErrorClass, MeasurementError, TcpResult, TcpSpec};
use std::net::IpAddr;

pub async fn run(
    _ctx: &Context<'_>,
    _spec: &TcpSpec,
    _destination: IpAddr,
) -> Result<TcpResult, MeasurementError> {
    Err(failure(
        ErrorClass::Unsupported,
        "tcp is not implemented in this probe version",
    ))
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn render(result: &TcpResult) -> String {
    format!("{result:?}\n")
}

//! quic measurement (placeholder until its module lands).

use crate::engine::{Context, failure};
use sixmap_shared::measurement::{ErrorClass, MeasurementError, QuicResult, QuicSpec};
use std::net::IpAddr;

pub async fn run(
    _ctx: &Context<'_>,
    _spec: &QuicSpec,
    _destination: IpAddr,
) -> Result<QuicResult, MeasurementError> {
    Err(failure(
        ErrorClass::Unsupported,
        "quic is not implemented in this probe version",
    ))
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn render(result: &QuicResult) -> String {
    format!("{result:?}\n")
}

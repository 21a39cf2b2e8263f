//! traceroute measurement (placeholder until its module lands).

use crate::engine::{Context, failure};
use sixmap_shared::measurement::{ErrorClass, MeasurementError, TracerouteResult, TracerouteSpec};
use std::net::IpAddr;

pub async fn run(
    _ctx: &Context<'_>,
    _spec: &TracerouteSpec,
    _destination: IpAddr,
) -> Result<TracerouteResult, MeasurementError> {
    Err(failure(
        ErrorClass::Unsupported,
        "traceroute is not implemented in this probe version",
    ))
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn render(result: &TracerouteResult) -> String {
    format!("{result:?}\n")
}

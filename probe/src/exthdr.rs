//! exthdr measurement (placeholder until its module lands).

use crate::engine::{Context, failure};
use sixmap_shared::measurement::{ErrorClass, ExtHeaderResult, ExtHeaderSpec, MeasurementError};
use std::net::IpAddr;

pub async fn run(
    _ctx: &Context<'_>,
    _spec: &ExtHeaderSpec,
    _destination: IpAddr,
) -> Result<ExtHeaderResult, MeasurementError> {
    Err(failure(
        ErrorClass::Unsupported,
        "exthdr is not implemented in this probe version",
    ))
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn render(result: &ExtHeaderResult) -> String {
    format!("{result:?}\n")
}

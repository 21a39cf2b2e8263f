//! dns measurement (placeholder until its module lands).

use crate::engine::{Context, failure};
use sixmap_shared::measurement::{DnsResult, DnsSpec, ErrorClass, MeasurementError};
use std::net::IpAddr;

pub async fn run(
    _ctx: &Context<'_>,
    _spec: &DnsSpec,
    _destination: IpAddr,
) -> Result<DnsResult, MeasurementError> {
    Err(failure(
        ErrorClass::Unsupported,
        "dns is not implemented in this probe version",
    ))
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn render(result: &DnsResult) -> String {
    format!("{result:?}\n")
}

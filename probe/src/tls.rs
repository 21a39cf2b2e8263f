//! tls measurement (placeholder until its module lands).

use crate::engine::{Context, failure};
use sixmap_shared::measurement::{ErrorClass, MeasurementError, TlsResult, TlsSpec};
use std::net::IpAddr;

pub async fn run(
    _ctx: &Context<'_>,
    _spec: &TlsSpec,
    _destination: IpAddr,
) -> Result<TlsResult, MeasurementError> {
    Err(failure(
        ErrorClass::Unsupported,
        "tls is not implemented in this probe version",
    ))
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn render(result: &TlsResult) -> String {
    format!("{result:?}\n")
}

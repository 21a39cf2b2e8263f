//! http measurement (placeholder until its module lands).

use crate::engine::{Context, failure};
use sixmap_shared::measurement::{ErrorClass, HttpResult, HttpSpec, MeasurementError};
use std::net::IpAddr;

pub async fn run(
    _ctx: &Context<'_>,
    _spec: &HttpSpec,
    _destination: IpAddr,
) -> Result<HttpResult, MeasurementError> {
    Err(failure(
        ErrorClass::Unsupported,
        "http is not implemented in this probe version",
    ))
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn render(result: &HttpResult) -> String {
    format!("{result:?}\n")
}

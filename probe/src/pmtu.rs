//! pmtu measurement (placeholder until its module lands).

use crate::engine::{Context, failure};
use sixmap_shared::measurement::{ErrorClass, MeasurementError, PmtuResult, PmtuSpec};
use std::net::IpAddr;

pub async fn run(
    _ctx: &Context<'_>,
    _spec: &PmtuSpec,
    _destination: IpAddr,
) -> Result<PmtuResult, MeasurementError> {
    Err(failure(
        ErrorClass::Unsupported,
        "pmtu is not implemented in this probe version",
    ))
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn render(result: &PmtuResult) -> String {
    format!("{result:?}\n")
}

//! The paired dual-stack measurement: the same name over IPv6 and IPv4 at the same moment.

use crate::engine::{Context, failure};
use sixmap_shared::measurement::{DualStackResult, DualStackSpec, ErrorClass, MeasurementError};

pub async fn run(
    _ctx: &Context<'_>,
    _spec: &DualStackSpec,
) -> Result<DualStackResult, MeasurementError> {
    Err(failure(
        ErrorClass::Unsupported,
        "dual_stack is not implemented in this probe version",
    ))
}

/// Human-readable lines for `sixmap-probe measure`.
pub fn render(result: &DualStackResult) -> String {
    format!("{result:?}\n")
}

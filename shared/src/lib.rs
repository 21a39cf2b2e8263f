//! sixmap domain types.
//!
//! Everything here is already validated: code that holds one of these types never re-checks it.
//! Wire types (prost) never appear here; `sixmap-proto` converts them at the edge.

pub mod blame;
#[cfg(any(feature = "cli", test))]
pub mod cli_help;
pub mod config;
pub mod digest;
pub mod enrollment;
pub mod errors;
pub mod health;
pub mod ids;
pub mod measurement;
pub mod metrics;
pub mod nat64;
pub mod policy;
pub mod prefixes;
pub mod session;
pub mod time;
pub mod version;

pub use health::{
    InterfaceKind, LossReason, OutboxLoss, ProbeTag, SelfTest, TagName, TagNameError,
};
pub use ids::{BootEpoch, IdError, ProbeId, ResultKey, TaskId};
pub use measurement::{
    ClockInfo, ClockState, ErrorClass, Family, IcmpError, IcmpSocketKind, MeasurementError,
    MeasurementKind, MeasurementResult, MeasurementSpec, Outcome, PingReply, PingResult, PingSpec,
    SpecError, SpecKind, Target, TimestampSource,
};
pub use policy::{PolicyViolation, TargetPolicy};
pub use session::{
    Ack, Assignment, CollectorMessage, FieldError, Hello, ProbeMessage, Rejection, Welcome,
};
pub use time::UnixMicros;

//! Session-level messages between probe and collector, validated.
//!
//! [`ProbeMessage`] and [`CollectorMessage`] are what the two daemons say on a session stream.
//! `sixmap-proto` turns them into wire messages and back, once, at the edge of the stream; the
//! daemons match these enums, never protobuf wrappers.

use crate::health::{OutboxLoss, ProbeTag, SelfTest};
use crate::ids::{BootEpoch, ProbeId, ResultKey, TaskId};
use crate::measurement::{MeasurementKind, MeasurementResult, MeasurementSpec, SpecError};
use crate::time::UnixMicros;
use crate::version::Version;
use std::net::IpAddr;
use std::time::Duration;

/// Upper bound on how many results one batch may carry; both sides use this constant.
pub const MAX_BATCH_RESULTS: usize = 256;
/// gRPC message size limit, both directions, on both sides. A full result batch stays well
/// below it.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// The name in the collector's TLS server certificate, which probes verify. Probes reach the
/// collector at whatever address they are configured with; what authenticates it is the
/// collector's own CA, pinned at enrollment, which issues this one server name only.
pub const COLLECTOR_TLS_NAME: &str = "sixmap-collector";

/// Upper bound on addresses a probe may list in its hello.
pub const MAX_LOCAL_ADDRESSES: usize = 64;

/// The first message of every session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Must match the session's client certificate, which is what identifies the probe.
    pub probe_id: ProbeId,
    pub software_version: Version,
    pub boot_epoch: BootEpoch,
    pub capabilities: Vec<MeasurementKind>,
    pub local_addresses: Vec<IpAddr>,
    pub probe_time: UnixMicros,
    pub location: Option<CoarseLocation>,
}

/// A location rounded to a tenth of a degree (about 11 km), for volunteers' privacy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CoarseLocation {
    latitude_e1: i16,
    longitude_e1: i16,
}

impl CoarseLocation {
    /// From tenths of a degree, as the wire carries them.
    pub fn from_tenths(latitude_e1: i32, longitude_e1: i32) -> Option<Self> {
        let latitude_e1 = i16::try_from(latitude_e1).ok()?;
        let longitude_e1 = i16::try_from(longitude_e1).ok()?;
        ((-900..=900).contains(&latitude_e1) && (-1800..=1800).contains(&longitude_e1)).then_some(
            Self {
                latitude_e1,
                longitude_e1,
            },
        )
    }

    /// Rounds degrees to the nearest tenth; `None` outside the globe or for NaN.
    pub fn from_degrees(latitude: f64, longitude: f64) -> Option<Self> {
        if !latitude.is_finite() || !longitude.is_finite() {
            return None;
        }
        let tenths = |degrees: f64| (degrees * 10.0).round() as i32;
        Self::from_tenths(tenths(latitude), tenths(longitude))
    }

    pub fn latitude_e1(self) -> i32 {
        i32::from(self.latitude_e1)
    }

    pub fn longitude_e1(self) -> i32 {
        i32::from(self.longitude_e1)
    }

    pub fn latitude(self) -> f64 {
        f64::from(self.latitude_e1) / 10.0
    }

    pub fn longitude(self) -> f64 {
        f64::from(self.longitude_e1) / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_rounded_and_bounded() {
        let l = CoarseLocation::from_degrees(52.37403, 4.88969).unwrap();
        assert_eq!((l.latitude_e1(), l.longitude_e1()), (524, 49));
        assert_eq!(l.latitude(), 52.4);
        assert!(CoarseLocation::from_degrees(90.04, -180.0).is_some());
        assert!(CoarseLocation::from_degrees(90.1, 0.0).is_none());
        assert!(CoarseLocation::from_degrees(f64::NAN, 0.0).is_none());
        assert!(CoarseLocation::from_tenths(0, 1801).is_none());
        assert!(CoarseLocation::from_tenths(70_000, 0).is_none());
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub server_time: UnixMicros,
    pub collector_version: String,
    pub heartbeat_interval: Duration,
    pub max_batch_results: usize,
}

/// A task the collector assigns to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub task_id: TaskId,
    pub spec: MeasurementSpec,
    /// `None` runs the task once.
    pub interval: Option<Duration>,
    pub not_before: Option<UnixMicros>,
}

/// Shortest interval a periodic task may have.
pub const MIN_TASK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub key: ResultKey,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub batch_id: u64,
    pub stored: Vec<ResultKey>,
    pub rejected: Vec<Rejection>,
    /// Loss records of the batch stored durably.
    pub stored_losses: Vec<ResultKey>,
}

/// A message field that failed validation, named by its path from the decoded message
/// (e.g. `results[3].ping.replies[0].from`). `sixmap-proto` reports every decoding problem
/// with one (as `WireError`); it lives here so received messages can carry per-item outcomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field `{field}`: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn missing(field: &str) -> Self {
        Self::new(field, "required but missing")
    }

    /// Prefixes the field path with the enclosing field.
    #[must_use]
    pub fn within(mut self, outer: &str) -> Self {
        self.field = format!("{outer}.{}", self.field);
        self
    }
}

impl From<SpecError> for FieldError {
    fn from(e: SpecError) -> Self {
        match e {
            SpecError::Field { field, reason } => Self::new(field, reason),
            unsupported @ SpecError::Unsupported(_) => Self::new("kind", unsupported.to_string()),
        }
    }
}

/// Sent by the probe every heartbeat interval (see [`Welcome::heartbeat_interval`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub probe_time: UnixMicros,
    /// Results produced but not yet acknowledged (the probe's outbox).
    pub pending_results: u64,
    /// Bytes those results take in the outbox.
    pub pending_bytes: u64,
}

/// Results and loss records as a probe sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultBatch {
    /// Probe-chosen, echoed in the [`Ack`].
    pub batch_id: u64,
    pub results: Vec<MeasurementResult>,
    pub losses: Vec<OutboxLoss>,
}

/// One item of a received batch, decoded on its own; on error, its key too when that could be
/// read (so the item can be answered by name rather than dropped).
pub type DecodedItem<T> = Result<T, (Option<ResultKey>, FieldError)>;
/// One result of a received batch.
pub type BatchItem = DecodedItem<MeasurementResult>;
/// One loss record of a received batch.
pub type LossItem = DecodedItem<OutboxLoss>;

/// A result batch as the collector receives it: one bad result does not sink the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedBatch {
    pub batch_id: u64,
    /// How many results the batch carried, well-formed or not.
    pub result_count: usize,
    /// The results and loss records, each decoded on its own; `Err` for a problem of the
    /// whole batch (more results or losses than [`MAX_BATCH_RESULTS`]), which refuses it all.
    pub items: Result<(Vec<BatchItem>, Vec<LossItem>), FieldError>,
}

/// Everything a probe sends on a session stream. `B` is the result batch: [`ResultBatch`] as
/// the probe builds it, [`ReceivedBatch`] as the collector decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeMessage<B = ResultBatch> {
    /// The first message of every session, and only the first.
    Hello(Hello),
    Heartbeat(Heartbeat),
    Results(B),
    SelfTest(SelfTest),
}

/// A probe message as the collector decodes it.
pub type ReceivedProbeMessage = ProbeMessage<ReceivedBatch>;

/// The collector tells the probe to stop a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// Unknown ids are ignored by the probe.
    pub task_id: TaskId,
    /// For people: logged by the probe.
    pub reason: String,
}

/// A received assignment; on error, its task id too when that is valid, so the probe can
/// report the refusal as the task's result (a probe older than the collector's features, a
/// spec outside the probe's bounds).
pub type AssignmentItem = Result<Assignment, (Option<TaskId>, FieldError)>;

/// Everything the collector sends on a session stream. `A` is the assignment: [`Assignment`]
/// as the collector builds it, [`AssignmentItem`] as the probe decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollectorMessage<A = Assignment> {
    /// The answer to a hello, and the first message of every session.
    Welcome(Welcome),
    Assign(A),
    Ack(Ack),
    Cancel(Cancel),
    /// The probe's current tags: after the welcome and on every change.
    Tags(Vec<ProbeTag>),
}

/// A collector message as the probe decodes it.
pub type ReceivedCollectorMessage = CollectorMessage<AssignmentItem>;

#[cfg(test)]
mod message_tests {
    use super::*;

    #[test]
    fn field_errors_name_their_path() {
        let e = FieldError::missing("from")
            .within("replies[0]")
            .within("ping");
        assert_eq!(e.field, "ping.replies[0].from");
        assert_eq!(
            e.to_string(),
            "invalid field `ping.replies[0].from`: required but missing"
        );
        let unsupported: FieldError = SpecError::Unsupported(MeasurementKind::Ping).into();
        assert_eq!(unsupported.field, "kind");
    }
}

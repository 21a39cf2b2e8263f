//! Session-level messages between probe and collector, validated.

use crate::ids::{BootEpoch, ProbeId, ProbeSecret, ResultKey, TaskId};
use crate::measurement::{MeasurementKind, MeasurementSpec};
use crate::time::UnixMicros;
use crate::version::Version;
use std::net::IpAddr;
use std::time::Duration;

/// Upper bound on how many results one batch may carry; both sides use this constant.
pub const MAX_BATCH_RESULTS: usize = 256;
/// gRPC message size limit, both directions, on both sides. A full result batch stays well
/// below it.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Upper bound on addresses a probe may list in its hello.
pub const MAX_LOCAL_ADDRESSES: usize = 64;

/// The first message of every session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub probe_id: ProbeId,
    pub secret: ProbeSecret,
    pub software_version: Version,
    pub boot_epoch: BootEpoch,
    pub capabilities: Vec<MeasurementKind>,
    pub local_addresses: Vec<IpAddr>,
    pub probe_time: UnixMicros,
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

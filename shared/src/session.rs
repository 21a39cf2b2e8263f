//! Session-level messages between probe and collector, validated.

use crate::ids::{BootEpoch, ProbeId, ResultKey, TaskId};
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

//! Identities: probes, tasks and result idempotency keys.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("probe id must be {PROBE_ID_HEX_LEN} lowercase hex digits, got {0:?}")]
    ProbeId(String),
    #[error("task id must be greater than zero")]
    TaskId,
    #[error("random number source failed: {0}")]
    Random(String),
}

const PROBE_ID_HEX_LEN: usize = 16;

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn random_hex<const N: usize>() -> Result<String, IdError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| IdError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A probe's identity, assigned by the collector at enrollment: 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProbeId(String);

impl ProbeId {
    pub fn random() -> Result<Self, IdError> {
        random_hex::<{ PROBE_ID_HEX_LEN / 2 }>().map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ProbeId {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        if is_lower_hex(text, PROBE_ID_HEX_LEN) {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdError::ProbeId(text.chars().take(40).collect()))
        }
    }
}

impl TryFrom<String> for ProbeId {
    type Error = IdError;
    fn try_from(text: String) -> Result<Self, IdError> {
        text.parse()
    }
}

impl From<ProbeId> for String {
    fn from(id: ProbeId) -> String {
        id.0
    }
}

impl fmt::Display for ProbeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A task id chosen by the collector; never zero so that proto3's default is never valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(NonZeroU64);

impl TaskId {
    pub fn new(raw: u64) -> Result<Self, IdError> {
        NonZeroU64::new(raw).map(Self).ok_or(IdError::TaskId)
    }

    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Incremented by the probe at every start; distinguishes sequence numbers across restarts.
pub type BootEpoch = u64;

/// Idempotency key of a result: the same key always means the same result.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResultKey {
    pub probe_id: ProbeId,
    pub boot_epoch: BootEpoch,
    pub sequence: u64,
}

impl fmt::Display for ResultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.probe_id, self.boot_epoch, self.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_ids_are_validated() {
        let id = ProbeId::random().unwrap();
        assert_eq!(id.as_str().len(), 16);
        assert_eq!(id.as_str().parse::<ProbeId>().unwrap(), id);
        assert!("0123456789ABCDEF".parse::<ProbeId>().is_err());
        assert!("0123".parse::<ProbeId>().is_err());
        let err = "zz".parse::<ProbeId>().unwrap_err().to_string();
        assert!(err.contains("probe id"), "{err}");
    }

    #[test]
    fn task_id_zero_is_rejected() {
        assert_eq!(TaskId::new(0), Err(IdError::TaskId));
        assert_eq!(TaskId::new(7).unwrap().get(), 7);
    }
}

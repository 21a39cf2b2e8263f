//! One attempt at a collector of the list, as enrollment and the session loop both make it:
//! connecting with the session's message limits, keep-alives and timeout, what a failed call
//! means (retry after a pause, or stop: [`End`]), and the pause before the next attempt.

use crate::backoff::{Backoff, random_unit};
use crate::collector_tls;
use crate::config::Settings;
use crate::failover::{Pause, Rotation};
use crate::identity::StateError;
use crate::outbox::OutboxError;
use sixmap_proto::v1::probe_control_client::ProbeControlClient;
use sixmap_shared::session::MAX_MESSAGE_BYTES;
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Jitter spreads reconnections over [30, 60] s once a collector has been away for a while.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    State(#[from] StateError),
    /// The outbox cannot be written: results could not be made durable.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The collector refused this probe for a reason retrying cannot fix.
    #[error("collector refused the probe: {0}")]
    Refused(String),
    /// The collector's operator revoked this probe; it will not start again with this identity.
    #[error("{0}")]
    Revoked(String),
    #[error("{0}")]
    Config(String),
}

/// The pause before the next attempt, as `failover` decides it.
pub(crate) fn pause(backoff: &mut Backoff, pause: Pause) -> Duration {
    match pause {
        Pause::Short => backoff.first_delay(random_unit()),
        Pause::Backoff => backoff.next_delay(random_unit()),
    }
}

pub(crate) fn rotation(settings: &Settings) -> Result<Rotation, ProbeError> {
    Rotation::new(settings.collectors.clone())
        .ok_or_else(|| ProbeError::Config("no collector configured".into()))
}

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// Transient: reconnect after a backoff.
    Retry(String),
    Fatal(ProbeError),
}

pub(crate) fn classify(context: &str, status: tonic::Status) -> End {
    let message = format!("{context}: {} ({:?})", status.message(), status.code());
    match status.code() {
        Code::PermissionDenied if status.message().contains("was revoked") => {
            End::Fatal(ProbeError::Revoked(format!(
                "this probe was revoked by the collector and stops for good: {}",
                status.message()
            )))
        }
        Code::Unauthenticated | Code::PermissionDenied | Code::FailedPrecondition => {
            End::Fatal(ProbeError::Refused(message))
        }
        _ => End::Retry(message),
    }
}

/// An error with its causes: tonic's transport errors say little at the top level, and a TLS
/// refusal (wrong CA, revoked certificate) is only named further down. Each message once
/// (`ConnectError` already quotes its source).
fn chain(error: &dyn std::error::Error) -> String {
    sixmap_shared::errors::chain(error)
}

pub(crate) async fn connect(
    collector: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<ProbeControlClient<Channel>, End> {
    let configure = |endpoint: Endpoint| {
        endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
    };
    match collector_tls::connect(collector, tls, configure).await {
        Ok(client) => Ok(client
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)),
        Err(e @ collector_tls::ConnectError::Url(_)) => {
            Err(End::Fatal(ProbeError::Config(e.to_string())))
        }
        Err(e) => Err(End::Retry(chain(&e))),
    }
}

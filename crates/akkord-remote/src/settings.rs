//! Settings of the remote transport.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::frame::{Lane, DEFAULT_MAX_FRAME_LEN, DEFAULT_MAX_LARGE_FRAME_LEN};
use crate::handshake::SharedSecret;
use crate::redelivery::RedeliverySettings;
use crate::tls::TlsSettings;

/// Settings of a [`crate::transport::Transport`], field by field.
///
/// Defaults follow Akka's and Pekko's `reference.conf` where they have the same setting.
/// The docs of the other defaults give the reason for each value.
#[derive(Clone, Debug)]
pub struct RemoteSettings {
    /// Actor system name. Nodes only associate with nodes of the same name. Required.
    pub system_name: String,
    /// Socket address the listener binds to. Default `127.0.0.1:0`: loopback only, and
    /// port 0 lets the operating system pick a free port. A node that other machines must
    /// reach binds a routable address explicitly; a wildcard address (`0.0.0.0`, `::`)
    /// needs [`RemoteSettings::canonical_host`].
    pub bind: SocketAddr,
    /// Host name or IP address that peers use to reach this node, sent in every handshake.
    /// Default `None`: the IP address of [`RemoteSettings::bind`].
    pub canonical_host: Option<String>,
    /// Incarnation uid of this node. Default `None`: a random 64-bit number, so every start
    /// is a new incarnation. Set it only in tests.
    pub uid: Option<u64>,
    /// Maximum frame length of the control lane in bytes. Default 256 KiB (Akka's
    /// `maximum-frame-size`). A peer that announces a longer frame is disconnected.
    pub control_frame_max: usize,
    /// Maximum frame length of the ordinary lane in bytes. Default 256 KiB (Akka's
    /// `maximum-frame-size`). Sending a longer message fails at the sender.
    pub ordinary_frame_max: usize,
    /// Maximum frame length of the large lane in bytes. Default 2 MiB (Akka's
    /// `maximum-large-frame-size`).
    pub large_frame_max: usize,
    /// Outbound queue capacity of the control lane, in messages per peer. Default 20000
    /// (Akka's `outbound-control-queue-size`). A full queue drops the message and counts it.
    pub control_queue_size: usize,
    /// Outbound queue capacity of the ordinary lane, in messages per peer. Default 3072
    /// (Akka's `outbound-message-queue-size`). Larger absorbs longer bursts at the cost of
    /// memory and latency while a peer is slow.
    pub ordinary_queue_size: usize,
    /// Outbound queue capacity of the large lane, in messages per peer. Default 256 (Akka's
    /// `outbound-large-message-queue-size`).
    pub large_queue_size: usize,
    /// Time an inbound connection has to complete its TLS and protocol handshake; a peer
    /// that connects and stays silent is closed after it. Default 5 s, chosen here: a
    /// handshake takes milliseconds on a working network, and 5 s is Akka's TCP
    /// `connection-timeout`. The same limit applies to an outbound handshake's reply.
    pub handshake_timeout: Duration,
    /// Time allowed for an outbound TCP connect. Default 5 s (Akka's `connection-timeout`).
    pub connect_timeout: Duration,
    /// First delay before reconnecting a lane after a failed connect or a lost connection;
    /// it doubles after each failure up to [`RemoteSettings::reconnect_backoff_max`].
    /// Default 200 ms, chosen here so a restarted peer is reached quickly.
    pub reconnect_backoff_min: Duration,
    /// Maximum delay between reconnect attempts. Default 5 s, chosen here to bound the
    /// time a recovered peer waits to be reached again.
    pub reconnect_backoff_max: Duration,
    /// Maximum bytes a lane writer gathers from its queue into one write. Default 64 KiB:
    /// enough to put many small messages in one system call without delaying the first.
    pub write_batch_max: usize,
    /// System-message redelivery: resend interval, buffer size and give-up time.
    pub redelivery: RedeliverySettings,
    /// Time after a quarantine at which the association with the quarantined incarnation's
    /// address is removed. Its lane tasks stop, its connections close, and what is still
    /// queued for the address is dropped and counted as stale. An association that a newer
    /// incarnation at the address uses is kept, and the quarantined incarnation stays
    /// quarantined. Default 1 h (Akka's `remove-quarantined-association-after`). The check
    /// runs every [`RedeliverySettings::resend_interval`].
    pub remove_quarantined_after: Duration,
    /// Shared cluster secret checked in every handshake. Default `None`.
    pub secret: Option<SharedSecret>,
    /// TLS 1.3 with mutual authentication. Default `None`: plain TCP.
    pub tls: Option<TlsSettings>,
}

impl RemoteSettings {
    /// Creates settings with the defaults for actor system `system_name`.
    pub fn new(system_name: impl Into<String>) -> Self {
        Self {
            system_name: system_name.into(),
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            canonical_host: None,
            uid: None,
            control_frame_max: DEFAULT_MAX_FRAME_LEN,
            ordinary_frame_max: DEFAULT_MAX_FRAME_LEN,
            large_frame_max: DEFAULT_MAX_LARGE_FRAME_LEN,
            control_queue_size: 20_000,
            ordinary_queue_size: 3072,
            large_queue_size: 256,
            handshake_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            reconnect_backoff_min: Duration::from_millis(200),
            reconnect_backoff_max: Duration::from_secs(5),
            write_batch_max: 64 * 1024,
            redelivery: RedeliverySettings::default(),
            remove_quarantined_after: Duration::from_secs(60 * 60),
            secret: None,
            tls: None,
        }
    }

    /// Returns the maximum frame length of `lane`.
    pub fn max_frame_len(&self, lane: Lane) -> usize {
        match lane {
            Lane::Control => self.control_frame_max,
            Lane::Ordinary => self.ordinary_frame_max,
            Lane::Large => self.large_frame_max,
        }
    }

    /// Returns the outbound queue capacity of `lane`.
    pub fn queue_size(&self, lane: Lane) -> usize {
        match lane {
            Lane::Control => self.control_queue_size,
            Lane::Ordinary => self.ordinary_queue_size,
            Lane::Large => self.large_queue_size,
        }
    }
}

/// Smallest frame limit a lane accepts, so protocol messages such as acknowledgements and
/// heartbeats always fit.
pub const MIN_FRAME_MAX: usize = 1024;

/// Invalid value of a setting of the remote transport, or of the cluster built on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {field} = {value}: {requirement}")]
pub struct InvalidSetting {
    /// Name of the rejected field, as a path from the settings value that contains it, such
    /// as `watch.heartbeat_interval` in [`crate::RemoteSystemSettings`].
    pub field: &'static str,
    /// The rejected value, formatted for humans.
    pub value: String,
    /// Description of a valid value.
    pub requirement: &'static str,
}

impl InvalidSetting {
    /// Creates the error for `field`, whose `value` fails `requirement`.
    pub fn new(
        field: &'static str,
        value: impl std::fmt::Debug,
        requirement: &'static str,
    ) -> Self {
        Self {
            field,
            value: format!("{value:?}"),
            requirement,
        }
    }
}

/// Returns an error naming the first of `fields` whose duration is zero.
pub(crate) fn require_nonzero(fields: &[(&'static str, Duration)]) -> Result<(), InvalidSetting> {
    match fields.iter().find(|(_, value)| value.is_zero()) {
        Some(&(field, value)) => Err(InvalidSetting::new(
            field,
            value,
            "expected a duration greater than zero, for example 1 s",
        )),
        None => Ok(()),
    }
}

impl RemoteSettings {
    /// Checks every field that can be out of range. [`crate::Transport::bind`] calls it.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidSetting`] naming the first field out of range: a zero
    /// duration, a zero queue size, batch size or redelivery buffer, a frame limit outside
    /// [`MIN_FRAME_MAX`] to `u32::MAX` bytes, or a `reconnect_backoff_max` below
    /// `reconnect_backoff_min`. The system name and host are checked where the address is
    /// made.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let durations = [
            ("handshake_timeout", self.handshake_timeout),
            ("connect_timeout", self.connect_timeout),
            ("reconnect_backoff_min", self.reconnect_backoff_min),
            ("reconnect_backoff_max", self.reconnect_backoff_max),
            (
                "redelivery.resend_interval",
                self.redelivery.resend_interval,
            ),
            ("redelivery.give_up_after", self.redelivery.give_up_after),
            ("remove_quarantined_after", self.remove_quarantined_after),
        ];
        require_nonzero(&durations)?;
        if self.reconnect_backoff_max < self.reconnect_backoff_min {
            return Err(InvalidSetting::new(
                "reconnect_backoff_max",
                self.reconnect_backoff_max,
                "expected at least reconnect_backoff_min",
            ));
        }
        let frame_limits = [
            ("control_frame_max", self.control_frame_max),
            ("ordinary_frame_max", self.ordinary_frame_max),
            ("large_frame_max", self.large_frame_max),
        ];
        for (field, value) in frame_limits {
            if value < MIN_FRAME_MAX || u32::try_from(value).is_err() {
                return Err(InvalidSetting::new(
                    field,
                    value,
                    "expected 1024 bytes up to 4 GiB less one byte, for example 256 KiB",
                ));
            }
        }
        let counts = [
            ("control_queue_size", self.control_queue_size),
            ("ordinary_queue_size", self.ordinary_queue_size),
            ("large_queue_size", self.large_queue_size),
            ("write_batch_max", self.write_batch_max),
            ("redelivery.buffer_size", self.redelivery.buffer_size),
        ];
        for (field, value) in counts {
            if value == 0 {
                return Err(InvalidSetting::new(field, value, "expected at least 1"));
            }
        }
        Ok(())
    }
}

/// Time between two warnings about the same kind of repeated drop on one association.
pub(crate) const DROP_WARN_INTERVAL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(RemoteSettings::new("test").validate(), Ok(()));
    }

    #[test]
    fn out_of_range_fields_are_named() {
        type Change = fn(&mut RemoteSettings);
        let cases: [(&str, Change); 8] = [
            ("redelivery.resend_interval", |s| {
                s.redelivery.resend_interval = Duration::ZERO
            }),
            ("handshake_timeout", |s| {
                s.handshake_timeout = Duration::ZERO
            }),
            ("remove_quarantined_after", |s| {
                s.remove_quarantined_after = Duration::ZERO
            }),
            ("reconnect_backoff_max", |s| {
                s.reconnect_backoff_max = Duration::from_millis(100);
                s.reconnect_backoff_min = Duration::from_secs(1);
            }),
            ("control_frame_max", |s| s.control_frame_max = 100),
            ("large_frame_max", |s| s.large_frame_max = usize::MAX),
            ("ordinary_queue_size", |s| s.ordinary_queue_size = 0),
            ("redelivery.buffer_size", |s| s.redelivery.buffer_size = 0),
        ];
        for (field, change) in cases {
            let mut settings = RemoteSettings::new("test");
            change(&mut settings);
            let error = settings.validate().unwrap_err();
            assert_eq!(error.field, field);
            assert!(error
                .to_string()
                .starts_with(&format!("invalid setting {field} = ")));
        }
    }
}

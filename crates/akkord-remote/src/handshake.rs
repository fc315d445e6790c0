//! Handshake of a new connection, without I/O.
//!
//! Every connection, on each lane, starts the same way:
//!
//! 1. The client writes the preamble (magic and lane byte) and one [`HandshakeRequest`]
//!    frame with its protocol version, system name, its own incarnation, the receiver
//!    incarnation it expects (none on first contact) and, with a shared secret, a proof.
//! 2. The server checks, in this order: magic and lane, protocol version, a well-formed
//!    sender, system name, secret proof, that the expected receiver incarnation is its own,
//!    and that the sender incarnation is not quarantined.
//! 3. The server replies with one [`HandshakeResponse`] frame carrying its own incarnation.
//!    A wrong magic, an unknown lane or an undecodable request gets no reply, because such a
//!    peer does not speak this protocol. Every other failure gets a rejection with a reason.
//! 4. After an acceptance the client sends frames of its lane; the server never writes again
//!    on that connection. After a rejection both sides close the connection.
//!
//! [`InboundHandshake`] runs steps 2 and 3 on bytes as they arrive; [`build_request`] and
//! [`check_response`] are the client's side.

use std::fmt;

use akkord_actor::address::{Address, UniqueAddress};
use bytes::{Bytes, BytesMut};
use prost::Message;
use ring::hmac;
use tokio_util::codec::Decoder;

use crate::frame::{decode_preamble, encode_frame, FrameCodec, FrameError, Lane, PREAMBLE_LEN};
use crate::wire::{HandshakeRequest, HandshakeResponse, RejectReason, UniqueAddressData};

/// Protocol version this build speaks; a handshake with another version is rejected.
pub const PROTOCOL_VERSION: u32 = 1;

/// Maximum length of a handshake request or response frame, 16 KiB.
///
/// A handshake is a few hundred bytes. The small limit keeps an unauthenticated peer from
/// making the server buffer a lane-sized frame before the handshake is checked.
pub const MAX_HANDSHAKE_FRAME_LEN: usize = 16 * 1024;

/// Shared cluster secret; every node of a cluster must be configured with the same bytes.
///
/// The secret itself never crosses the network: a handshake carries an HMAC-SHA256 of its
/// fields under the secret, which the receiver checks in constant time.
///
/// NOTE: without TLS an eavesdropper can replay a captured proof, because the proof covers
/// only the handshake fields and no challenge from the receiver. The secret keeps nodes of
/// other clusters and peers that never saw a handshake out; use TLS on untrusted networks.
#[derive(Clone)]
pub struct SharedSecret {
    key: hmac::Key,
}

impl SharedSecret {
    /// Creates a secret from its bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref()),
        }
    }

    /// Computes the proof of a handshake from `from` to `to` on `lane`.
    pub fn proof(
        &self,
        system_name: &str,
        from: &UniqueAddressData,
        to_uid: Option<u64>,
        lane: Lane,
    ) -> Vec<u8> {
        let message = proof_message(system_name, from, to_uid, lane);
        hmac::sign(&self.key, &message).as_ref().to_vec()
    }

    /// Checks a proof in constant time.
    pub fn verify(
        &self,
        system_name: &str,
        from: &UniqueAddressData,
        to_uid: Option<u64>,
        lane: Lane,
        proof: &[u8],
    ) -> bool {
        let message = proof_message(system_name, from, to_uid, lane);
        hmac::verify(&self.key, &message, proof).is_ok()
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// A rejected handshake: the reason sent to the peer and a detail for logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("handshake rejected ({reason:?}): {message}")]
pub struct HandshakeRejection {
    /// Reason code sent to the peer.
    pub reason: RejectReason,
    /// Human-readable detail, sent to the peer and logged; never contains a secret.
    pub message: String,
}

impl HandshakeRejection {
    fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Server-side checks of a handshake request.
#[derive(Clone, Debug)]
pub struct HandshakeAcceptor {
    local: UniqueAddress,
    secret: Option<SharedSecret>,
}

impl HandshakeAcceptor {
    /// Creates an acceptor for the local incarnation, with an optional shared secret.
    pub fn new(local: UniqueAddress, secret: Option<SharedSecret>) -> Self {
        Self { local, secret }
    }

    /// Returns the local incarnation.
    pub fn local(&self) -> &UniqueAddress {
        &self.local
    }

    /// Checks `request`, received on `lane`, and returns the sender incarnation.
    ///
    /// # Errors
    ///
    /// Returns a [`HandshakeRejection`] for the first check that fails, in the order of the
    /// module documentation.
    pub fn check(
        &self,
        lane: Lane,
        request: &HandshakeRequest,
        is_quarantined: &dyn Fn(&UniqueAddress) -> bool,
    ) -> Result<UniqueAddress, HandshakeRejection> {
        let local_system = self.local.address.system();
        if request.protocol_version != PROTOCOL_VERSION {
            return Err(HandshakeRejection::new(
                RejectReason::ProtocolVersion,
                format!(
                    "unsupported protocol version {}: this node speaks version {PROTOCOL_VERSION}",
                    request.protocol_version
                ),
            ));
        }
        let Some(from_data) = request.from.as_ref() else {
            return Err(HandshakeRejection::new(
                RejectReason::InvalidRequest,
                "missing sender incarnation",
            ));
        };
        let from = UniqueAddress::try_from(from_data).map_err(|error| {
            HandshakeRejection::new(
                RejectReason::InvalidRequest,
                format!("invalid sender address: {error}"),
            )
        })?;
        if request.system_name != local_system || from.address.system() != local_system {
            return Err(HandshakeRejection::new(
                RejectReason::SystemName,
                format!(
                    "wrong system name {:?}: this node belongs to {local_system:?}",
                    request.system_name
                ),
            ));
        }
        let to_uid = request.to.as_ref().map(|to| to.uid);
        if let Some(secret) = &self.secret {
            let valid = request.secret_proof.as_deref().is_some_and(|proof| {
                secret.verify(&request.system_name, from_data, to_uid, lane, proof)
            });
            if !valid {
                return Err(HandshakeRejection::new(
                    RejectReason::Secret,
                    "missing or wrong shared-secret proof",
                ));
            }
        }
        if let Some(to) = &request.to {
            if to.uid != self.local.uid {
                return Err(HandshakeRejection::new(
                    RejectReason::WrongIncarnation,
                    format!(
                        "handshake addressed to incarnation {} but this node is incarnation {}",
                        to.uid, self.local.uid
                    ),
                ));
            }
        }
        if is_quarantined(&from) {
            return Err(HandshakeRejection::new(
                RejectReason::Quarantined,
                format!("incarnation {from} is quarantined by this node"),
            ));
        }
        Ok(from)
    }

    /// Builds the response to a checked request.
    pub fn response(&self, outcome: Result<(), &HandshakeRejection>) -> HandshakeResponse {
        let from = Some(UniqueAddressData::from(&self.local));
        match outcome {
            Ok(()) => HandshakeResponse {
                accepted: true,
                from,
                reason: RejectReason::Unspecified as i32,
                message: String::new(),
            },
            Err(rejection) => HandshakeResponse {
                accepted: false,
                from,
                reason: rejection.reason as i32,
                message: rejection.message.clone(),
            },
        }
    }
}

/// Result of feeding bytes to an [`InboundHandshake`].
#[derive(Debug)]
pub enum HandshakeProgress {
    /// More bytes are needed.
    NeedMore,
    /// The peer is accepted: write `response`, then read frames starting with `leftover`.
    Accepted {
        /// Lane of the connection.
        lane: Lane,
        /// Peer incarnation.
        peer: UniqueAddress,
        /// Framed [`HandshakeResponse`] to write.
        response: Bytes,
        /// Bytes received after the request, the start of the first lane frames.
        leftover: BytesMut,
        /// True when the peer also reads frames written back on the connection.
        duplex: bool,
    },
    /// The peer is rejected: write `response`, then close.
    Rejected {
        /// Lane of the connection.
        lane: Lane,
        /// Sender incarnation the request claimed, when it had one.
        claimed_peer: Option<UniqueAddressData>,
        /// Reason for the rejection.
        rejection: HandshakeRejection,
        /// Framed [`HandshakeResponse`] to write.
        response: Bytes,
    },
    /// The bytes are not a handshake of this protocol: close without a reply.
    Failed(FrameError),
}

/// Server side of a handshake, fed with the bytes a new connection receives.
#[derive(Debug)]
pub struct InboundHandshake {
    acceptor: HandshakeAcceptor,
    buffer: BytesMut,
    lane: Option<Lane>,
    finished: bool,
}

impl InboundHandshake {
    /// Creates the handshake state of a new connection.
    pub fn new(acceptor: HandshakeAcceptor) -> Self {
        Self {
            acceptor,
            buffer: BytesMut::new(),
            lane: None,
            finished: false,
        }
    }

    /// Feeds received bytes and returns the progress.
    ///
    /// After a result other than [`HandshakeProgress::NeedMore`] the handshake is finished
    /// and further calls return [`HandshakeProgress::Failed`].
    pub fn feed(
        &mut self,
        bytes: &[u8],
        is_quarantined: &dyn Fn(&UniqueAddress) -> bool,
    ) -> HandshakeProgress {
        if self.finished {
            return HandshakeProgress::Failed(FrameError::Io(std::io::Error::other(
                "handshake already finished",
            )));
        }
        self.buffer.extend_from_slice(bytes);
        let progress = self.advance(is_quarantined);
        if !matches!(progress, HandshakeProgress::NeedMore) {
            self.finished = true;
        }
        progress
    }

    fn advance(&mut self, is_quarantined: &dyn Fn(&UniqueAddress) -> bool) -> HandshakeProgress {
        // The preamble: magic and lane.
        let lane = match self.lane {
            Some(lane) => lane,
            None => {
                if self.buffer.len() < PREAMBLE_LEN {
                    return HandshakeProgress::NeedMore;
                }
                let preamble = self.buffer.split_to(PREAMBLE_LEN);
                let mut bytes = [0; PREAMBLE_LEN];
                bytes.copy_from_slice(&preamble);
                match decode_preamble(&bytes) {
                    Ok(lane) => {
                        self.lane = Some(lane);
                        lane
                    }
                    Err(error) => return HandshakeProgress::Failed(error),
                }
            }
        };

        // One complete request frame.
        let body = match FrameCodec::new(MAX_HANDSHAKE_FRAME_LEN).decode(&mut self.buffer) {
            Ok(Some(body)) => body,
            Ok(None) => return HandshakeProgress::NeedMore,
            Err(error) => return HandshakeProgress::Failed(error),
        };
        let request = match HandshakeRequest::decode(body) {
            Ok(request) => request,
            Err(error) => return HandshakeProgress::Failed(FrameError::Undecodable(error)),
        };

        // The checks, and the reply.
        match self.acceptor.check(lane, &request, is_quarantined) {
            Ok(peer) => HandshakeProgress::Accepted {
                lane,
                peer,
                response: frame_response(&self.acceptor.response(Ok(()))),
                leftover: std::mem::take(&mut self.buffer),
                duplex: request.duplex,
            },
            Err(rejection) => HandshakeProgress::Rejected {
                lane,
                claimed_peer: request.from,
                response: frame_response(&self.acceptor.response(Err(&rejection))),
                rejection,
            },
        }
    }
}

/// Builds the request a client sends on `lane` to reach `to` (none on first contact).
///
/// The request does not offer the connection for frames in the other direction: set
/// [`HandshakeRequest::duplex`] on it for that.
pub fn build_request(
    local: &UniqueAddress,
    to: Option<&UniqueAddress>,
    lane: Lane,
    secret: Option<&SharedSecret>,
) -> HandshakeRequest {
    let from = UniqueAddressData::from(local);
    let system_name = local.address.system().to_owned();
    let to_uid = to.map(|to| to.uid);
    let secret_proof = secret.map(|secret| secret.proof(&system_name, &from, to_uid, lane));
    HandshakeRequest {
        protocol_version: PROTOCOL_VERSION,
        system_name,
        from: Some(from),
        to: to.map(UniqueAddressData::from),
        secret_proof,
        duplex: false,
    }
}

/// Client-side failure of a handshake.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutboundHandshakeError {
    /// The server rejected the handshake.
    #[error("peer rejected the handshake ({reason:?}): {message}")]
    Rejected {
        /// Reason code sent by the server.
        reason: RejectReason,
        /// Detail sent by the server.
        message: String,
        /// Incarnation the server reported, when valid.
        responder: Option<UniqueAddress>,
    },
    /// The response is malformed or names a node other than the one dialed.
    #[error("invalid handshake response: {0}")]
    InvalidResponse(String),
}

/// Checks the server's response to a request sent to `address`, expecting incarnation
/// `expected_uid` when known, and returns the server's incarnation.
///
/// # Errors
///
/// Returns [`OutboundHandshakeError::Rejected`] for a rejection and
/// [`OutboundHandshakeError::InvalidResponse`] for an acceptance without a valid incarnation,
/// from another system, or from an incarnation other than the expected one.
pub fn check_response(
    response: &HandshakeResponse,
    address: &Address,
    expected_uid: Option<u64>,
) -> Result<UniqueAddress, OutboundHandshakeError> {
    let responder = response
        .from
        .as_ref()
        .and_then(|data| UniqueAddress::try_from(data).ok());
    if !response.accepted {
        let reason = RejectReason::try_from(response.reason).unwrap_or(RejectReason::Unspecified);
        return Err(OutboundHandshakeError::Rejected {
            reason,
            message: response.message.clone(),
            responder,
        });
    }
    let Some(responder) = responder else {
        return Err(OutboundHandshakeError::InvalidResponse(
            "acceptance without a valid responder incarnation".into(),
        ));
    };
    if responder.address.system() != address.system() {
        return Err(OutboundHandshakeError::InvalidResponse(format!(
            "responder {responder} belongs to another system than {address}"
        )));
    }
    if expected_uid.is_some_and(|uid| uid != responder.uid) {
        return Err(OutboundHandshakeError::InvalidResponse(format!(
            "responder {responder} accepted a handshake addressed to incarnation {}",
            expected_uid.unwrap_or_default()
        )));
    }
    Ok(responder)
}

fn frame_response(response: &HandshakeResponse) -> Bytes {
    // A response contains two short strings, so only an absurdly long local address could
    // exceed the handshake frame limit. Such a response is framed anyway, with no limit.
    encode_frame(response, usize::MAX).unwrap_or_default()
}

fn proof_message(
    system_name: &str,
    from: &UniqueAddressData,
    to_uid: Option<u64>,
    lane: Lane,
) -> Vec<u8> {
    let mut message = Vec::with_capacity(64 + system_name.len() + from.host.len());
    message.extend_from_slice(b"akkord-handshake-v1\0");
    message.extend_from_slice(system_name.as_bytes());
    message.push(0);
    message.extend_from_slice(from.host.as_bytes());
    message.push(0);
    message.extend_from_slice(&from.port.to_be_bytes());
    message.extend_from_slice(&from.uid.to_be_bytes());
    message.push(u8::from(to_uid.is_some()));
    message.extend_from_slice(&to_uid.unwrap_or(0).to_be_bytes());
    message.push(lane.to_byte());
    message
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;

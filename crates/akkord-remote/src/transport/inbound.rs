//! Inbound side: the listener, the handshake of each accepted connection and frame dispatch.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use akkord_actor::address::UniqueAddress;
use akkord_actor::remote_support::run_ready_after;
use bytes::{Buf, Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace, warn};

use super::cancel::until_cancelled;
use super::stream::{Connection, Link, LinkReader};
use super::{lock, Destination, Inner, TransportEvent};
use crate::frame::{FrameCodec, FrameError, Lane, FRAME_HEADER_LEN};
use crate::handshake::{HandshakeProgress, InboundHandshake};
use crate::wire::{
    decode_user_fields, decode_user_parts, Ack, ControlFrame, ControlMessage, HeartbeatResponse,
    UserEnvelope, UserParts,
};

/// Time to wait before accepting again after `accept` fails, for example when the process
/// runs out of file descriptors.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                inner
                    .runtime
                    .spawn(serve_connection(inner.clone(), stream, remote));
            }
            Err(error) => {
                warn!(node = %inner.local, %error, "failed to accept a connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

async fn serve_connection(inner: Arc<Inner>, tcp: TcpStream, remote: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let timeout = inner.settings.handshake_timeout;
    let handshake = tokio::select! {
        _ = inner.shutdown.cancelled() => return,
        result = tokio::time::timeout(timeout, handshake(&inner, tcp)) => result,
    };
    let (link, lane, peer, leftover, duplex) = match handshake {
        Err(_) => {
            reject(&inner);
            warn!(peer = %remote, ?timeout, "closing inbound connection: handshake timed out");
            return;
        }
        Ok(Err(failure)) => {
            reject(&inner);
            failure.log(remote);
            return;
        }
        Ok(Ok(accepted)) => accepted,
    };
    debug!(peer = %peer, remote = %remote, lane = %lane, duplex, "inbound connection accepted");

    let Some(registration) = inner.open_inbound(&peer) else {
        debug!(peer = %peer, lane = %lane, "closing inbound connection of quarantined peer");
        return;
    };
    let (reader, sink) = link.split();
    // Keeps the write side open while this task reads, even once the lane writer drops the
    // sink.
    let _open = sink.keep_open();
    let closed = CancellationToken::new();
    // Without an offer the sink is kept, not dropped, so the connection stays whole while
    // it is read.
    let (offer, _kept) = if duplex {
        let id = inner.offer_link(lane, peer.clone(), sink, closed.clone());
        (Some(id), None)
    } else {
        (None, Some(sink))
    };
    let reading = read_frames(&inner, reader, lane, &peer, leftover);
    let result = match until_cancelled(reading, [&registration.closed, &closed]).await {
        Ok(result) => Some(result),
        Err(0) => {
            debug!(peer = %peer, lane = %lane, "closing inbound connection of quarantined peer");
            None
        }
        // The lane writer that took the offer stopped using the connection.
        Err(_) => {
            debug!(peer = %peer, lane = %lane, "closing inbound connection given up by its lane writer");
            None
        }
    };
    if let Some(id) = offer {
        inner.withdraw_link(&peer, lane, id);
    }
    // On a quarantine the lane writer that took the offer leaves by itself, after writing
    // the quarantine notice that is queued for the peer.
    let Some(result) = result else {
        return;
    };
    // The lane writer writing to this connection, if any, must reconnect.
    closed.cancel();
    match result {
        Ok(()) => {
            debug!(peer = %peer, remote = %remote, lane = %lane, "inbound connection closed by peer")
        }
        Err(error) => {
            reject(&inner);
            warn!(peer = %peer, remote = %remote, lane = %lane, %error, "closing inbound connection");
        }
    }
}

/// Reads the frames that `peer` writes back on an outbound connection of `lane`, until the
/// connection closes, `closed` is cancelled or `peer` is quarantined. Cancels `closed` when
/// the connection closed or sent something invalid, so the lane writer reconnects.
pub(super) async fn read_returned_frames(
    inner: Arc<Inner>,
    reader: LinkReader,
    lane: Lane,
    peer: UniqueAddress,
    closed: CancellationToken,
) {
    let Some(registration) = inner.open_inbound(&peer) else {
        return;
    };
    let reading = read_frames(&inner, reader, lane, &peer, BytesMut::new());
    // On a quarantine the lane writer leaves by itself, after writing the notice.
    let Ok(result) = until_cancelled(reading, [&registration.closed, &closed]).await else {
        return;
    };
    match result {
        Ok(()) => debug!(peer = %peer, lane = %lane, "outbound connection closed by peer"),
        Err(error) => {
            reject(&inner);
            warn!(peer = %peer, lane = %lane, %error, "closing outbound connection: invalid frames written back");
        }
    }
    // Counted and logged before the lane writer learns that the connection closed.
    closed.cancel();
}

enum HandshakeFailure {
    Io(std::io::Error),
    Closed,
    Invalid(FrameError),
    Rejected {
        lane: Lane,
        claimed: String,
        reason: String,
    },
}

impl HandshakeFailure {
    fn log(&self, remote: SocketAddr) {
        match self {
            HandshakeFailure::Io(error) => {
                warn!(peer = %remote, %error, "closing inbound connection: handshake i/o failed");
            }
            HandshakeFailure::Closed => {
                warn!(peer = %remote, "closing inbound connection: peer closed it during the handshake");
            }
            HandshakeFailure::Invalid(error) => {
                warn!(peer = %remote, %error, "closing inbound connection: invalid handshake");
            }
            HandshakeFailure::Rejected {
                lane,
                claimed,
                reason,
            } => {
                warn!(peer = %remote, claimed = %claimed, lane = %lane, reason = %reason, "rejected inbound handshake");
            }
        }
    }
}

type Accepted = (Link, Lane, UniqueAddress, BytesMut, bool);

async fn handshake(inner: &Arc<Inner>, tcp: TcpStream) -> Result<Accepted, HandshakeFailure> {
    let mut link = match &inner.tls {
        Some((acceptor, _)) => Link::Tls(Box::new(
            acceptor.accept(tcp).await.map_err(HandshakeFailure::Io)?,
        )),
        None => Link::Plain(tcp),
    };
    let connection = link.stream();
    let mut state = InboundHandshake::new(inner.acceptor.clone());
    let mut buffer = vec![0u8; 4096];
    let is_quarantined = |peer: &UniqueAddress| inner.is_quarantined(peer);
    loop {
        let n = connection
            .read(&mut buffer)
            .await
            .map_err(HandshakeFailure::Io)?;
        if n == 0 {
            return Err(HandshakeFailure::Closed);
        }
        match state.feed(&buffer[..n], &is_quarantined) {
            HandshakeProgress::NeedMore => {}
            HandshakeProgress::Accepted {
                lane,
                peer,
                response,
                leftover,
                duplex,
            } => {
                write_response(connection, &response)
                    .await
                    .map_err(HandshakeFailure::Io)?;
                return Ok((link, lane, peer, leftover, duplex));
            }
            HandshakeProgress::Rejected {
                lane,
                claimed_peer,
                rejection,
                response,
            } => {
                // Best effort: the peer learns the reason unless it stopped reading.
                let _ = write_response(connection, &response).await;
                let claimed = claimed_peer
                    .and_then(|data| UniqueAddress::try_from(&data).ok())
                    .map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
                return Err(HandshakeFailure::Rejected {
                    lane,
                    claimed,
                    reason: rejection.to_string(),
                });
            }
            HandshakeProgress::Failed(error) => return Err(HandshakeFailure::Invalid(error)),
        }
    }
}

async fn write_response(connection: &mut dyn Connection, response: &Bytes) -> std::io::Result<()> {
    connection.write_all(response).await?;
    connection.flush().await
}

#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
}

/// Minimum free space of the read buffer before each read. It has room for hundreds of
/// small frames, so one system call and one wake-up of the task serve many messages.
const READ_RESERVE: usize = 64 * 1024;

async fn read_frames(
    inner: &Arc<Inner>,
    mut connection: LinkReader,
    lane: Lane,
    peer: &UniqueAddress,
    mut buffer: BytesMut,
) -> Result<(), ReadError> {
    let codec = FrameCodec::new(inner.settings.max_frame_len(lane));
    loop {
        // The recipients made ready by this read run in this task once it is dispatched.
        run_ready_after(|| dispatch_buffered(inner, lane, peer, &codec, &mut buffer)).await?;
        buffer.reserve(READ_RESERVE);
        let n = connection
            .read_buf(&mut buffer)
            .await
            .map_err(FrameError::Io)?;
        if n == 0 {
            dispatch_buffered(inner, lane, peer, &codec, &mut buffer)?;
            if !buffer.is_empty() {
                return Err(FrameError::Truncated {
                    buffered: buffer.len(),
                }
                .into());
            }
            return Ok(());
        }
    }
}

/// Dispatches the complete frames at the start of `buffer` and removes them from it.
///
/// User messages without a sender, nearly all of them, are read in place, and consecutive
/// ones for one recipient with one manifest go to the handler together. Frames of other
/// kinds are split off the buffer and decoded by prost.
fn dispatch_buffered(
    inner: &Arc<Inner>,
    lane: Lane,
    peer: &UniqueAddress,
    codec: &FrameCodec,
    buffer: &mut BytesMut,
) -> Result<(), ReadError> {
    // Start of the first frame not yet dispatched.
    let mut start = 0;
    while let Some(len) = codec.complete_body_len(&buffer[start..])? {
        let body = start + FRAME_HEADER_LEN..start + FRAME_HEADER_LEN + len;
        if lane != Lane::Control {
            if let Some(parts) = decode_user_parts(&buffer[body.clone()]) {
                let UserParts {
                    recipient,
                    manifest,
                    payload,
                } = parts;
                let mut rest = UserRun::new(&buffer[body.end..], *codec, recipient, manifest);
                inner
                    .handler
                    .on_user_run(peer, lane, recipient, manifest, payload, &mut rest);
                count_frames(inner, lane, peer, 1 + rest.yielded);
                start = body.end + rest.end;
                continue;
            }
        }
        buffer.advance(body.start);
        let frame = buffer.split_to(len).freeze();
        start = 0;
        dispatch(inner, lane, peer, frame)?;
    }
    buffer.advance(start);
    // Room for the rest of a partly read frame, so a large frame takes few reads.
    if let Some(header) = buffer.first_chunk::<FRAME_HEADER_LEN>() {
        let total = FRAME_HEADER_LEN + u32::from_be_bytes(*header) as usize;
        buffer.reserve(total.saturating_sub(buffer.len()));
    }
    Ok(())
}

/// Payloads of the user messages that follow the first of a run in a connection's read
/// buffer, as long as they have no sender and the run's recipient and manifest.
///
/// It stops at the first frame that differs or is incomplete. A frame it stops at is
/// dispatched on its own, so errors in it are reported as usual.
pub struct UserRun<'a> {
    /// The read buffer from the end of the first message on.
    buffer: &'a [u8],
    codec: FrameCodec,
    recipient: u64,
    manifest: &'a [u8],
    /// Payloads yielded so far.
    yielded: u64,
    /// Offset in `buffer` of the first frame not yielded.
    end: usize,
}

impl<'a> UserRun<'a> {
    /// Creates a run over the frames at the start of `buffer` for `recipient` and
    /// `manifest`, whose frames `codec` limits.
    pub(crate) fn new(
        buffer: &'a [u8],
        codec: FrameCodec,
        recipient: u64,
        manifest: &'a str,
    ) -> Self {
        Self {
            buffer,
            codec,
            recipient,
            manifest: manifest.as_bytes(),
            yielded: 0,
            end: 0,
        }
    }
}

impl<'a> Iterator for UserRun<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = &self.buffer[self.end..];
        let len = self.codec.complete_body_len(rest).ok()??;
        let (recipient, manifest, payload) =
            decode_user_fields(&rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len])?;
        if recipient != self.recipient || manifest != self.manifest {
            return None;
        }
        self.end += FRAME_HEADER_LEN + len;
        self.yielded += 1;
        Some(payload)
    }
}

impl std::fmt::Debug for UserRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRun")
            .field("recipient", &self.recipient)
            .field("yielded", &self.yielded)
            .finish_non_exhaustive()
    }
}

fn count_frames(inner: &Inner, lane: Lane, peer: &UniqueAddress, frames: u64) {
    inner.counters.frames_received[lane.index()].fetch_add(frames, Ordering::Relaxed);
    trace!(peer = %peer, lane = %lane, frames, "received frames");
}

/// Dispatches one frame that is not a user message read in place.
fn dispatch(
    inner: &Arc<Inner>,
    lane: Lane,
    peer: &UniqueAddress,
    frame: Bytes,
) -> Result<(), ReadError> {
    count_frames(inner, lane, peer, 1);
    match lane {
        Lane::Ordinary | Lane::Large => {
            let envelope = UserEnvelope::decode(frame).map_err(FrameError::Undecodable)?;
            inner.handler.on_user_message(peer, lane, envelope);
        }
        Lane::Control => {
            let control = ControlFrame::decode(frame).map_err(FrameError::Undecodable)?;
            dispatch_control(inner, peer, control.message)?;
        }
    }
    Ok(())
}

fn dispatch_control(
    inner: &Arc<Inner>,
    peer: &UniqueAddress,
    message: Option<ControlMessage>,
) -> Result<(), ReadError> {
    match message {
        Some(ControlMessage::System(system)) => {
            let envelope = system
                .envelope
                .ok_or(ReadError::Protocol("system message without an envelope"))?;
            let receipt = {
                let mut receivers = lock(&inner.receivers);
                receivers
                    .entry(peer.clone())
                    .or_default()
                    .receive(system.seq_nr)
            };
            if receipt.deliver {
                inner.handler.on_system_message(peer, envelope);
            } else {
                debug!(peer = %peer, seq_nr = system.seq_nr, expected = receipt.ack + 1, "dropped out-of-order or duplicate system message");
            }
            let ack = ControlFrame {
                message: Some(ControlMessage::Ack(Ack {
                    cumulative: receipt.ack,
                    to_uid: peer.uid,
                })),
            };
            reply(inner, peer, &ack);
        }
        Some(ControlMessage::Ack(ack)) => {
            if let Some(association) = inner.association(&peer.address) {
                association.on_ack(peer.uid, ack.cumulative);
            }
        }
        Some(ControlMessage::Heartbeat(request)) => {
            let response = ControlFrame {
                message: Some(ControlMessage::HeartbeatResponse(HeartbeatResponse {
                    nonce: request.nonce,
                    uid: inner.local.uid,
                })),
            };
            reply(inner, peer, &response);
        }
        Some(ControlMessage::HeartbeatResponse(response)) => {
            inner.handler.on_heartbeat_response(peer, response.nonce);
        }
        Some(ControlMessage::Quarantine(notice)) => {
            let about_us = notice
                .quarantined
                .as_ref()
                .is_some_and(|quarantined| quarantined.uid == inner.local.uid);
            if about_us {
                warn!(peer = %peer, reason = %notice.reason, "peer quarantined this node");
                inner.handler.on_event(TransportEvent::QuarantinedByPeer {
                    peer: peer.clone(),
                    reason: notice.reason,
                });
            }
        }
        Some(ControlMessage::User(envelope)) => {
            inner.handler.on_user_message(peer, Lane::Control, envelope);
        }
        None => debug!(peer = %peer, "ignored control message of an unknown kind"),
    }
    Ok(())
}

fn reply(inner: &Arc<Inner>, peer: &UniqueAddress, frame: &ControlFrame) {
    if let Err(error) = inner.send_control(&Destination::Node(peer.clone()), frame) {
        debug!(peer = %peer, %error, "failed to queue control reply");
    }
}

fn reject(inner: &Inner) {
    inner
        .counters
        .inbound_rejected
        .fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_user_envelope, ActorRefData};

    fn frame(recipient: u64, manifest: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        encode_user_envelope(recipient, manifest, payload, &mut body);
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn run_stops_at_first_other_frame() {
        let with_sender = UserEnvelope {
            recipient: 1,
            sender: Some(ActorRefData::default()),
            manifest: "m".into(),
            payload: Bytes::from_static(b"s"),
        };
        let mut sender_frame = (with_sender.encoded_len() as u32).to_be_bytes().to_vec();
        sender_frame.extend_from_slice(&with_sender.encode_to_vec());
        let endings: [(&str, Vec<u8>); 5] = [
            ("other recipient", frame(2, "m", b"x")),
            ("other manifest", frame(1, "n", b"x")),
            ("a sender", sender_frame),
            ("an incomplete frame", frame(1, "m", b"x")[..6].to_vec()),
            ("an oversized header", vec![0xff; 8]),
        ];
        for (ending, last) in endings {
            let mut buffer =
                [frame(1, "m", b"a"), frame(1, "m", b""), frame(1, "m", b"c")].concat();
            let run_len = buffer.len();
            buffer.extend_from_slice(&last);
            let mut run = UserRun::new(&buffer, FrameCodec::new(64), 1, "m");
            let payloads: Vec<&[u8]> = run.by_ref().collect();
            assert_eq!(payloads, [&b"a"[..], b"", b"c"], "{ending}");
            assert_eq!(run.yielded, 3, "{ending}");
            assert_eq!(run.end, run_len, "{ending}");
            // Called again, the run still stops at the same frame.
            assert_eq!(run.next(), None, "{ending}");
        }
    }

    proptest::proptest! {
        /// Over any bytes after the first message, a run yields exactly the payloads of the
        /// leading complete frames that `decode_user_parts` reads with the run's recipient
        /// and manifest, and never reads past the buffer.
        #[test]
        fn run_yields_matching_prefix(
            messages in proptest::collection::vec(
                (0..3u64, proptest::prop_oneof!["m", "n"], proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20)),
                0..8,
            ),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
        ) {
            let mut buffer = Vec::new();
            for (recipient, manifest, payload) in &messages {
                buffer.extend_from_slice(&frame(*recipient, manifest, payload));
            }
            buffer.extend_from_slice(&tail);
            let expected: Vec<&[u8]> = messages
                .iter()
                .take_while(|(recipient, manifest, _)| *recipient == 1 && manifest == "m")
                .map(|(_, _, payload)| payload.as_slice())
                .collect();
            let mut run = UserRun::new(&buffer, FrameCodec::new(64), 1, "m");
            let mut yielded: Vec<&[u8]> = run.by_ref().collect();
            // Bytes of the tail may happen to form one more matching frame.
            let matched_all = expected.len() == messages.len();
            if matched_all && yielded.len() > expected.len() {
                yielded.truncate(expected.len());
            }
            proptest::prop_assert_eq!(yielded, expected);
            proptest::prop_assert!(run.end <= buffer.len());
        }
    }
}

//! Outbound side of an association: lane queues, lane writer tasks and the resend ticker.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use akkord_actor::address::{Address, UniqueAddress};
use bytes::BytesMut;
use prost::Message;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, trace, warn};

use super::inbound::read_returned_frames;
use super::queue::{Batch, LaneQueue, PushError, Pushed, DIRECT_WRITE_GAP};
use super::stream::{LaneSink, Link, OfferedLink};
use super::{lock, Inner, SendError, TransportEvent};
use crate::frame::{encode_frame, encode_preamble, Lane, FRAME_HEADER_LEN};
use crate::handshake::{
    build_request, check_response, OutboundHandshakeError, MAX_HANDSHAKE_FRAME_LEN,
};
use crate::redelivery::{RedeliveryError, SystemMessageSender};
use crate::settings::DROP_WARN_INTERVAL;
use crate::wire::{
    ControlFrame, ControlMessage, HandshakeResponse, QuarantineNotice, RejectReason,
    SystemEnvelope, UniqueAddressData, UserEnvelope,
};

/// Association with one remote address and the incarnation living there.
pub(crate) struct Association {
    remote: Address,
    queues: [LaneQueue; 3],
    state: Mutex<State>,
    /// Bumped when the incarnation changes or is quarantined, so lanes drop their connections.
    generation: watch::Sender<u64>,
    last_drop_warn: Mutex<[Option<Instant>; 3]>,
    /// Cancelled when the association is removed or the transport shuts down, which stops
    /// its lane writers and resend ticker.
    stopped: CancellationToken,
    /// Set, under the state's lock, when the association is removed from the transport.
    removed: AtomicBool,
}

/// Reason a frame was not queued on an association.
#[derive(Debug)]
pub(crate) enum Unqueued {
    /// The frame cannot be sent, for the reason given.
    Failed(SendError),
    /// The association was removed after the caller looked it up: its successor takes the
    /// frame.
    Removed,
}

impl From<SendError> for Unqueued {
    fn from(error: SendError) -> Self {
        Unqueued::Failed(error)
    }
}

struct State {
    /// Incarnation talked to, or expected when not yet confirmed by a handshake.
    incarnation: Option<u64>,
    confirmed: bool,
    /// Incarnations a handshake showed to be replaced by a newer one at this address.
    replaced: HashSet<u64>,
    /// Redelivery state per destination incarnation. Usually one entry; a second appears
    /// while callers address an incarnation that no handshake has reached yet.
    system: HashMap<u64, SystemMessageSender<UserEnvelope>>,
    /// Time of the last quarantine of an incarnation at this address.
    quarantined_at: Option<Instant>,
}

impl Association {
    /// Creates the association and spawns its lane writers and resend ticker.
    pub(crate) fn start(inner: &Arc<Inner>, remote: Address) -> Arc<Self> {
        let settings = &inner.settings;
        let queues = Lane::ALL.map(|lane| {
            LaneQueue::new(
                settings.queue_size(lane),
                settings.write_batch_max,
                DIRECT_WRITE_GAP,
            )
        });
        let association = Arc::new(Self {
            remote,
            queues,
            state: Mutex::new(State {
                incarnation: None,
                confirmed: false,
                replaced: HashSet::new(),
                system: HashMap::new(),
                quarantined_at: None,
            }),
            generation: watch::Sender::new(0),
            last_drop_warn: Mutex::new([None; 3]),
            stopped: inner.shutdown.child_token(),
            removed: AtomicBool::new(false),
        });
        for lane in Lane::ALL {
            let writer = LaneWriter {
                inner: inner.clone(),
                association: association.clone(),
                lane,
                generation: association.generation.subscribe(),
            };
            inner.runtime.spawn(writer.run());
        }
        inner
            .runtime
            .spawn(run_resend_ticker(inner.clone(), association.clone()));
        association
    }

    /// Queues a frame on `lane`, for incarnation `target_uid` when given. `encode` writes
    /// its body of `len` bytes, which the caller checked against the lane's frame limit.
    pub(crate) fn enqueue(
        &self,
        inner: &Inner,
        lane: Lane,
        target_uid: Option<u64>,
        len: usize,
        encode: impl FnOnce(&mut BytesMut),
    ) -> Result<(), Unqueued> {
        if let Some(uid) = target_uid {
            self.check_incarnation(uid)?;
        }
        self.push(inner, lane, target_uid, false, len, encode)
    }

    /// Numbers a system message, keeps it for redelivery and queues it on the control lane.
    pub(crate) fn send_system(
        &self,
        inner: &Arc<Inner>,
        to: &UniqueAddress,
        envelope: UserEnvelope,
    ) -> Result<(), Unqueued> {
        let max = inner.settings.control_frame_max;
        let probe = system_frame(u64::MAX, envelope.clone());
        if probe.encoded_len() > max {
            return Err(SendError::FrameTooLarge {
                lane: Lane::Control,
                len: probe.encoded_len(),
                max,
            }
            .into());
        }
        let seq_nr = {
            let mut state = lock(&self.state);
            self.check_incarnation_locked(&mut state, to.uid)?;
            let settings = &inner.settings.redelivery;
            state
                .system
                .entry(to.uid)
                .or_insert_with(|| SystemMessageSender::new(settings.clone()))
                .send(envelope.clone(), Instant::now())
        };
        let seq_nr = match seq_nr {
            Ok(seq_nr) => seq_nr,
            Err(error) => {
                inner.quarantine(to, &error.to_string());
                return Err(SendError::Quarantined(to.clone()).into());
            }
        };
        let frame = system_frame(seq_nr, envelope);
        // A full control queue loses only this copy: the redelivery buffer resends it. The
        // queue is not closed, because an unacknowledged system message prevents removal.
        let _ = self.push_message(inner, Lane::Control, Some(to.uid), false, &frame);
        Ok(())
    }

    /// Applies an acknowledgement from incarnation `peer_uid`.
    pub(crate) fn on_ack(&self, peer_uid: u64, cumulative: u64) {
        let mut state = lock(&self.state);
        if let Some(sender) = state.system.get_mut(&peer_uid) {
            sender.on_ack(cumulative, Instant::now());
        }
    }

    /// Returns the system messages due for resending and the incarnations to give up on.
    fn tick_redelivery(&self, now: Instant) -> SystemTick {
        let mut state = lock(&self.state);
        let mut resends = Vec::new();
        let mut failures = Vec::new();
        for (&uid, sender) in state.system.iter_mut() {
            match sender.tick(now) {
                Ok(due) => resends.extend(
                    due.into_iter()
                        .map(|(seq_nr, envelope)| (uid, seq_nr, envelope)),
                ),
                Err(error) => failures.push((uid, error)),
            }
        }
        (resends, failures)
    }

    /// Returns the number of unacknowledged system messages.
    pub(crate) fn unacked_system_messages(&self) -> usize {
        lock(&self.state)
            .system
            .values()
            .map(SystemMessageSender::unacked_len)
            .sum()
    }

    /// Returns the unacknowledged system messages, oldest first within each peer
    /// incarnation.
    #[cfg(test)]
    pub(crate) fn unacked_system_envelopes(&self) -> Vec<UserEnvelope> {
        lock(&self.state)
            .system
            .values()
            .flat_map(|sender| sender.unacked().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Sends a quarantine notice to `peer` and drops everything kept for it.
    pub(crate) fn quarantine(&self, inner: &Inner, peer: &UniqueAddress, reason: &str) {
        let notice = ControlFrame {
            message: Some(ControlMessage::Quarantine(QuarantineNotice {
                quarantined: Some(UniqueAddressData::from(peer)),
                reason: reason.to_owned(),
            })),
        };
        if notice.encoded_len() <= inner.settings.control_frame_max {
            let _ = self.push_message(inner, Lane::Control, Some(peer.uid), true, &notice);
        }
        let mut state = lock(&self.state);
        let talked_to = state.incarnation == Some(peer.uid);
        if talked_to {
            state.incarnation = None;
            state.confirmed = false;
        }
        state.system.remove(&peer.uid);
        state.quarantined_at = Some(Instant::now());
        drop(state);
        // Only the lanes of the incarnation talked to are connected to it. Quarantining an
        // earlier one, as the cluster does 5 s after a removal, leaves them alone.
        if talked_to {
            // Senders must not write to the quarantined peer before the writers notice.
            for queue in &self.queues {
                queue.clear_idle();
            }
            self.generation.send_modify(|generation| *generation += 1);
        }
    }

    fn check_incarnation(&self, uid: u64) -> Result<(), Unqueued> {
        let mut state = lock(&self.state);
        self.check_incarnation_locked(&mut state, uid)
    }

    /// Checks that frames for incarnation `uid` may be queued, and records it as the one
    /// talked to when there is none.
    fn check_incarnation_locked(&self, state: &mut State, uid: u64) -> Result<(), Unqueued> {
        if self.removed.load(Ordering::Acquire) {
            return Err(Unqueued::Removed);
        }
        match state.incarnation {
            None => {
                state.incarnation = Some(uid);
                Ok(())
            }
            Some(current) if state.replaced.contains(&uid) => Err(SendError::IncarnationGone {
                peer: UniqueAddress::new(self.remote.clone(), uid),
                current,
            }
            .into()),
            // Another uid than the current one may be a newer incarnation that no handshake
            // has reached yet: queue it, and the lane writer drops it if the peer disagrees.
            Some(_) => Ok(()),
        }
    }

    /// Queues `message`, whose length the caller checked against the lane's frame limit.
    fn push_message(
        &self,
        inner: &Inner,
        lane: Lane,
        target_uid: Option<u64>,
        farewell: bool,
        message: &impl Message,
    ) -> Result<(), Unqueued> {
        let len = message.encoded_len();
        self.push(inner, lane, target_uid, farewell, len, |buffer| {
            message.encode_raw(buffer)
        })
    }

    fn push(
        &self,
        inner: &Inner,
        lane: Lane,
        target_uid: Option<u64>,
        farewell: bool,
        len: usize,
        encode: impl FnOnce(&mut BytesMut),
    ) -> Result<(), Unqueued> {
        if inner.is_shut_down() {
            return Err(SendError::ShutDown.into());
        }
        match self.queues[lane.index()].push(target_uid, farewell, len, encode) {
            Ok(Pushed::Queued) => Ok(()),
            Ok(Pushed::Written) => {
                let counters = &inner.counters;
                counters.frames_sent[lane.index()].fetch_add(1, Ordering::Relaxed);
                counters.batches_sent[lane.index()].fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(PushError::Closed) => Err(Unqueued::Removed),
            Err(PushError::Full) => {
                let dropped = inner.counters.dropped_queue_full[lane.index()]
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                self.warn_drop(lane, dropped);
                Err(SendError::QueueFull {
                    address: self.remote.clone(),
                    lane,
                }
                .into())
            }
        }
    }

    /// Returns true once the association is removed from the transport.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Removes the association when its last quarantine is at least `after` old and no
    /// incarnation at its address was talked to since. Returns true when it did.
    ///
    /// Frames still queued are dropped and counted as stale: a quarantine notice the dead
    /// peer never took, for example. A sender that looked the association up before is
    /// rejected and looks up its successor.
    fn remove_if_unused(self: &Arc<Self>, inner: &Inner, after: Duration, now: Instant) -> bool {
        let due = |state: &State| {
            state
                .quarantined_at
                .is_some_and(|at| now.saturating_duration_since(at) >= after)
        };
        // Most ticks end here, without the transport-wide lock.
        if !due(&lock(&self.state)) {
            return false;
        }
        let mut associations = lock(&inner.associations);
        let state = lock(&self.state);
        let unused = state.incarnation.is_none() && state.system.is_empty() && due(&state);
        if !unused || self.is_removed() {
            return false;
        }
        self.remove(inner, &mut associations, state);
        true
    }

    /// Removes the association from `associations`, closes its queues and stops its tasks.
    fn remove(
        self: &Arc<Self>,
        inner: &Inner,
        associations: &mut HashMap<Address, Arc<Association>>,
        state: MutexGuard<'_, State>,
    ) {
        self.removed.store(true, Ordering::Release);
        // Closed under the state's lock, so a frame is either queued before, and counted
        // below, or rejected.
        let dropped: u64 = self.queues.iter().map(LaneQueue::close).sum();
        drop(state);
        associations.retain(|_, association| !Arc::ptr_eq(association, self));
        inner
            .counters
            .dropped_stale
            .fetch_add(dropped, Ordering::Relaxed);
        self.stopped.cancel();
        info!(peer = %self.remote, dropped, "removed the association of a quarantined peer");
    }

    /// Removes the association whatever its state, as when the removal races a sender.
    #[cfg(test)]
    pub(crate) fn remove_now(self: &Arc<Self>, inner: &Inner) {
        let mut associations = lock(&inner.associations);
        self.remove(inner, &mut associations, lock(&self.state));
    }

    fn warn_drop(&self, lane: Lane, dropped_total: u64) {
        let now = Instant::now();
        let mut last = lock(&self.last_drop_warn);
        let due = last[lane.index()]
            .is_none_or(|at| now.saturating_duration_since(at) >= DROP_WARN_INTERVAL);
        if due {
            last[lane.index()] = Some(now);
            warn!(
                peer = %self.remote,
                lane = %lane,
                dropped_total,
                "outbound queue full, dropping messages"
            );
        } else {
            debug!(peer = %self.remote, lane = %lane, "outbound queue full, message dropped");
        }
    }

    /// Records the incarnation a handshake reached; returns false when it is quarantined.
    fn confirm(&self, inner: &Inner, responder: &UniqueAddress) -> bool {
        if inner.is_quarantined(responder) {
            return false;
        }
        let mut state = lock(&self.state);
        match state.incarnation {
            Some(current) if current != responder.uid => {
                state.incarnation = Some(responder.uid);
                state.confirmed = true;
                state.replaced.insert(current);
                state.system.remove(&current);
                drop(state);
                inner.forget_inbound(&UniqueAddress::new(responder.address.clone(), current));
                self.generation.send_modify(|generation| *generation += 1);
                inner.handler.on_event(TransportEvent::IncarnationChanged {
                    address: self.remote.clone(),
                    old: current,
                    new: responder.uid,
                });
            }
            _ => {
                state.incarnation = Some(responder.uid);
                state.confirmed = true;
            }
        }
        true
    }

    /// Records `peer`, whose connection to this node a lane writer takes, as the incarnation
    /// talked to. Returns false, changing nothing, when `peer` is quarantined or another
    /// incarnation is talked to or expected. Only a handshake that this node sends may show
    /// that an incarnation was replaced.
    fn confirm_offered(&self, inner: &Inner, peer: &UniqueAddress) -> bool {
        if inner.is_quarantined(peer) {
            return false;
        }
        let mut state = lock(&self.state);
        if state.incarnation.is_some_and(|uid| uid != peer.uid)
            || state.replaced.contains(&peer.uid)
        {
            return false;
        }
        state.incarnation = Some(peer.uid);
        state.confirmed = true;
        true
    }

    fn expected_incarnation(&self) -> Option<UniqueAddress> {
        lock(&self.state)
            .incarnation
            .map(|uid| UniqueAddress::new(self.remote.clone(), uid))
    }
}

struct LaneWriter {
    inner: Arc<Inner>,
    association: Arc<Association>,
    lane: Lane,
    generation: watch::Receiver<u64>,
}

#[derive(Debug, thiserror::Error)]
enum LaneError {
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("i/o failed: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Handshake(#[from] OutboundHandshakeError),
    #[error("peer incarnation {0} is quarantined")]
    Quarantined(UniqueAddress),
    #[error("connection closed")]
    Closed,
}

enum Exit {
    Shutdown,
    Reconnect,
}

impl LaneWriter {
    async fn run(mut self) {
        let inner = self.inner.clone();
        let settings = &inner.settings;
        let mut backoff = settings.reconnect_backoff_min;
        let mut failures = 0u32;
        loop {
            // Step 1: connect lazily, when a message is waiting.
            while self.queue().is_empty() {
                tokio::select! {
                    _ = self.association.stopped.cancelled() => return,
                    () = self.queue().ready() => {}
                }
            }
            self.generation.mark_unchanged();

            // Step 2: take the connection the peer opened, or connect and handshake. On
            // failure, wait and retry.
            let result = match self.take_offered() {
                Some(connected) => Ok(connected),
                None => tokio::select! {
                    _ = self.association.stopped.cancelled() => return,
                    result = self.connect() => result,
                },
            };
            let connected = match result {
                Ok(connected) => connected,
                Err(error) => {
                    let retry_now = self.handle_connect_error(&error, failures);
                    failures += 1;
                    if !retry_now {
                        tokio::select! {
                            _ = self.association.stopped.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(settings.reconnect_backoff_max);
                    }
                    continue;
                }
            };
            let peer = connected.peer.clone();
            backoff = settings.reconnect_backoff_min;
            failures = 0;

            // Step 3: write batches until the connection fails or must be replaced.
            match self.write_batches(connected).await {
                Ok(Exit::Shutdown) => return,
                Ok(Exit::Reconnect) => {}
                Err(error) => {
                    warn!(peer = %peer, lane = %self.lane, %error, "outbound lane connection lost, reconnecting");
                    tokio::select! {
                        _ = self.association.stopped.cancelled() => return,
                        () = tokio::time::sleep(settings.reconnect_backoff_min) => {}
                    }
                }
            }
        }
    }

    /// Logs a failed connect and adjusts the association; returns true to retry at once.
    fn handle_connect_error(&mut self, error: &LaneError, failures: u32) -> bool {
        let remote = &self.association.remote;
        match error {
            LaneError::Handshake(OutboundHandshakeError::Rejected {
                reason: RejectReason::WrongIncarnation,
                responder: Some(responder),
                ..
            }) if responder.address.system() == remote.system() => {
                warn!(peer = %remote, lane = %self.lane, new_uid = responder.uid, "peer restarted as a new incarnation");
                self.association.confirm(&self.inner, responder);
                failures < 3
            }
            LaneError::Quarantined(peer)
            | LaneError::Handshake(OutboundHandshakeError::Rejected {
                reason: RejectReason::Quarantined,
                responder: Some(peer),
                ..
            }) => {
                let dropped = self.queue().clear();
                self.inner
                    .counters
                    .dropped_stale
                    .fetch_add(dropped, Ordering::Relaxed);
                warn!(peer = %peer, lane = %self.lane, %error, dropped, "dropping messages to quarantined incarnation");
                false
            }
            _ if failures == 0 => {
                warn!(peer = %remote, lane = %self.lane, %error, "outbound lane failed to connect, retrying with backoff");
                false
            }
            _ => {
                debug!(peer = %remote, lane = %self.lane, %error, failures, "outbound lane failed to connect again");
                false
            }
        }
    }

    /// Takes the connection that the peer opened to this node on this lane, if the
    /// association may talk to the peer's incarnation.
    fn take_offered(&self) -> Option<Connected> {
        let association = &self.association;
        let link = self
            .inner
            .take_link(&association.remote, self.lane, |link| {
                association.confirm_offered(&self.inner, &link.peer)
            })?;
        let OfferedLink {
            peer, sink, closed, ..
        } = link;
        self.inner.counters.connections_taken[self.lane.index()].fetch_add(1, Ordering::Relaxed);
        debug!(peer = %peer, lane = %self.lane, "outbound lane writes to the connection the peer opened");
        Some(Connected { peer, sink, closed })
    }

    /// Connects to the peer and performs the handshake. A task of its own then reads what
    /// the peer writes back on the connection.
    async fn connect(&self) -> Result<Connected, LaneError> {
        let settings = &self.inner.settings;
        let remote = &self.association.remote;
        let expected = self.association.expected_incarnation();

        let tcp = tokio::time::timeout(
            settings.connect_timeout,
            TcpStream::connect((remote.host(), remote.port())),
        )
        .await
        .map_err(|_| LaneError::Timeout(settings.connect_timeout))?
        .map_err(LaneError::Connect)?;
        tcp.set_nodelay(true)?;

        let handshake = async {
            let mut request = build_request(
                &self.inner.local,
                expected.as_ref(),
                self.lane,
                settings.secret.as_ref(),
            );
            request.duplex = true;
            let mut opening = encode_preamble(self.lane).to_vec();
            opening.extend_from_slice(
                &encode_frame(&request, MAX_HANDSHAKE_FRAME_LEN)
                    .map_err(|error| io::Error::other(error.to_string()))?,
            );
            match &self.inner.tls {
                Some((_, connector)) => {
                    let name = ServerName::try_from(remote.host().to_owned())
                        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
                    let mut tls = connector.connect(name, tcp).await?;
                    let response = exchange(&mut tls, &opening).await?;
                    Ok::<_, LaneError>((Link::Tls(Box::new(tls)), response))
                }
                None => {
                    let mut tcp = tcp;
                    let response = exchange(&mut tcp, &opening).await?;
                    Ok((Link::Plain(tcp), response))
                }
            }
        };
        let (connection, response) = tokio::time::timeout(settings.handshake_timeout, handshake)
            .await
            .map_err(|_| LaneError::Timeout(settings.handshake_timeout))??;
        let responder = check_response(&response, remote, expected.as_ref().map(|e| e.uid))?;
        if !self.association.confirm(&self.inner, &responder) {
            return Err(LaneError::Quarantined(responder));
        }
        if responder.address != *remote {
            // Dialed through another name or a proxy: acknowledgements from the peer name
            // its own address, so they must find this association under it too.
            self.inner.alias(&responder.address, &self.association);
        }
        self.inner.counters.connections_opened[self.lane.index()].fetch_add(1, Ordering::Relaxed);
        debug!(peer = %responder, lane = %self.lane, "outbound lane connected");
        let (reader, sink) = connection.split();
        let closed = CancellationToken::new();
        self.inner.runtime.spawn(read_returned_frames(
            self.inner.clone(),
            reader,
            self.lane,
            responder.clone(),
            closed.clone(),
        ));
        Ok(Connected {
            peer: responder,
            sink,
            closed,
        })
    }

    /// Writes batches to the connection until it fails or must be replaced.
    async fn write_batches(&mut self, connected: Connected) -> Result<Exit, LaneError> {
        let Connected {
            peer,
            sink: mut writer,
            closed,
        } = connected;
        let peer = &peer;
        let association = self.association.clone();
        let _withdraw = WithdrawIdle(&association.queues[self.lane.index()]);
        // The reading side stops too when this writer stops using the connection.
        let _close = closed.clone().drop_guard();
        let mut closing = false;
        let mut wrote_since_wait = false;
        loop {
            if let Some(batch) = self.next_batch(peer, closing) {
                let frames = batch.frames;
                tokio::select! {
                    _ = self.association.stopped.cancelled() => return Ok(Exit::Shutdown),
                    // The peer was quarantined or replaced, so the batch is stale.
                    _ = self.generation.changed(), if !closing => {
                        self.drop_stale(peer, frames);
                        return Ok(Exit::Reconnect);
                    }
                    result = writer.write(&batch.bytes) => result?,
                }
                let lane = self.lane.index();
                let counters = &self.inner.counters;
                counters.frames_sent[lane].fetch_add(frames, Ordering::Relaxed);
                counters.batches_sent[lane].fetch_add(1, Ordering::Relaxed);
                trace!(peer = %peer, lane = %self.lane, frames, bytes = batch.bytes.len(), "wrote batch");
                self.queue().recycle(batch.bytes);
                wrote_since_wait = true;
                continue;
            }
            if closing {
                return Ok(Exit::Reconnect);
            }
            if wrote_since_wait {
                // Before waiting, let the tasks that are ready now run: those made ready
                // while the batch was written, such as askers woken by replies, then queue
                // their next frames without having to wake the writer.
                wrote_since_wait = false;
                tokio::task::yield_now().await;
                continue;
            }
            if let Some(idle) = writer.idle_socket(peer.uid) {
                if !self.queue().set_idle(idle) {
                    // Frames arrived since the last batch was taken.
                    continue;
                }
            }
            // Biased, so a connection the peer closed is noticed before a new batch is
            // written into it and lost.
            let woken = tokio::select! {
                biased;
                _ = self.association.stopped.cancelled() => return Ok(Exit::Shutdown),
                // The peer closed the connection, or wrote something invalid on it.
                _ = closed.cancelled() => return Err(LaneError::Closed),
                // Write what is queued (a quarantine notice among it), then reconnect.
                _ = self.generation.changed() => Wake::Replaced,
                () = self.association.queues[self.lane.index()].ready() => Wake::Frames,
            };
            self.queue().clear_idle();
            closing |= woken == Wake::Replaced;
            if woken == Wake::Frames {
                // Let the tasks that are ready now run first: tasks woken together, such as
                // askers woken by one batch of replies, then share one write.
                tokio::task::yield_now().await;
            }
        }
    }

    fn queue(&self) -> &LaneQueue {
        &self.association.queues[self.lane.index()]
    }

    /// Counts `stale` messages for `peer` dropped because their incarnation is gone or
    /// quarantined.
    fn drop_stale(&self, peer: &UniqueAddress, stale: u64) {
        self.inner
            .counters
            .dropped_stale
            .fetch_add(stale, Ordering::Relaxed);
        debug!(peer = %peer, lane = %self.lane, stale, "dropped messages for a gone or quarantined incarnation");
    }

    /// Takes the next batch to write to `peer`, dropping and counting those for another
    /// incarnation or for a quarantined one.
    ///
    /// While `closing` (`peer` was quarantined or replaced), a batch for another incarnation
    /// that is not quarantined stays queued for the next connection, and this returns
    /// `None`.
    fn next_batch(&self, peer: &UniqueAddress, closing: bool) -> Option<Batch> {
        let quarantined = self.inner.is_quarantined(peer);
        loop {
            let mut batch = self.queue().take()?;
            let other_target = batch.target_uid.filter(|&uid| uid != peer.uid);
            let wrong_target = other_target.is_some();
            if let Some(uid) = other_target.filter(|_| closing && !batch.farewell) {
                let target = UniqueAddress::new(peer.address.clone(), uid);
                if !self.inner.is_quarantined(&target) {
                    match self.queue().put_back(batch) {
                        Ok(()) => return None,
                        // The association was removed, so the batch is dropped below.
                        Err(returned) => batch = returned,
                    }
                }
            }
            let barred = quarantined && !batch.farewell;
            if !wrong_target && !barred {
                return Some(batch);
            }
            self.drop_stale(peer, batch.frames);
            self.queue().recycle(batch.bytes);
        }
    }
}

/// A lane's connection to its peer, ready for writing.
struct Connected {
    peer: UniqueAddress,
    sink: LaneSink,
    /// Cancelled when the connection closes or this writer stops using it.
    closed: CancellationToken,
}

/// Reason a lane writer's wait ended.
#[derive(PartialEq, Eq)]
enum Wake {
    Frames,
    Replaced,
}

/// Withdraws the idle socket when the writer stops using its connection.
struct WithdrawIdle<'a>(&'a LaneQueue);

impl Drop for WithdrawIdle<'_> {
    fn drop(&mut self) {
        self.0.clear_idle();
    }
}

/// Writes the preamble and handshake request, then reads the response.
async fn exchange(
    connection: &mut (impl AsyncRead + AsyncWrite + Unpin),
    opening: &[u8],
) -> Result<HandshakeResponse, LaneError> {
    connection.write_all(opening).await?;
    connection.flush().await?;
    read_response(connection).await
}

async fn read_response(
    connection: &mut (impl AsyncRead + Unpin),
) -> Result<HandshakeResponse, LaneError> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    connection.read_exact(&mut header).await?;
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_HANDSHAKE_FRAME_LEN {
        return Err(OutboundHandshakeError::InvalidResponse(format!(
            "response frame of {len} bytes exceeds {MAX_HANDSHAKE_FRAME_LEN} bytes"
        ))
        .into());
    }
    let mut body = vec![0u8; len];
    connection.read_exact(&mut body).await?;
    HandshakeResponse::decode(body.as_slice())
        .map_err(|error| OutboundHandshakeError::InvalidResponse(error.to_string()).into())
}

/// Resends unacknowledged system messages, quarantines incarnations that do not
/// acknowledge in time and removes the association once it is unused after a quarantine.
async fn run_resend_ticker(inner: Arc<Inner>, association: Arc<Association>) {
    let mut interval = tokio::time::interval(inner.settings.redelivery.resend_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = association.stopped.cancelled() => return,
            _ = interval.tick() => {}
        }
        let now = Instant::now();
        if association.remove_if_unused(&inner, inner.settings.remove_quarantined_after, now) {
            return;
        }
        let (resends, failures) = association.tick_redelivery(now);
        let max = inner.settings.control_frame_max;
        for (uid, seq_nr, envelope) in resends {
            let frame = system_frame(seq_nr, envelope);
            let len = frame.encoded_len();
            if len <= max {
                // A full queue skips this resend, uncounted; the next tick tries again.
                let _ = association.queues[Lane::Control.index()].push(
                    Some(uid),
                    false,
                    len,
                    |buffer| frame.encode_raw(buffer),
                );
            }
        }
        for (uid, error) in failures {
            let peer = UniqueAddress::new(association.remote.clone(), uid);
            inner.quarantine(&peer, &error.to_string());
        }
    }
}

type SystemTick = (Vec<(u64, u64, UserEnvelope)>, Vec<(u64, RedeliveryError)>);

fn system_frame(seq_nr: u64, envelope: UserEnvelope) -> ControlFrame {
    ControlFrame {
        message: Some(ControlMessage::System(SystemEnvelope {
            seq_nr,
            envelope: Some(envelope),
        })),
    }
}

//! Outbound queue of one lane: frames encoded back to back into batches that the lane
//! writer takes whole.
//!
//! Senders encode each frame straight into the newest batch under a short lock, so a send
//! allocates nothing once the batch buffers exist. The writer is woken only when the queue
//! stops being empty, so while it writes, later senders just append.
//!
//! While the writer of a plain TCP connection waits with nothing to write, it leaves its
//! socket in the queue. A sender that finds the lane idle for at least
//! [`DIRECT_WRITE_GAP`] writes its frame to the socket itself, which saves waking the
//! writer for a lone message such as an ask or its reply. Frames that follow each other
//! closer than that are queued, so a stream of messages still shares system calls.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use super::lock;
use crate::frame::FRAME_HEADER_LEN;

/// Spent batch buffers kept for reuse, at most.
const SPARE_BUFFERS: usize = 2;

/// Time since the last write after which a sender writes its frame to an idle lane's socket
/// itself. Messages of a burst come far closer together, so they are batched instead.
pub(crate) const DIRECT_WRITE_GAP: Duration = Duration::from_micros(10);

/// Frames waiting for one lane writer.
pub(crate) struct LaneQueue {
    state: Mutex<QueueState>,
    /// Wakes the writer when the queue stops being empty.
    ready: Notify,
    /// Frames queued at most; beyond it a push fails.
    capacity: usize,
    /// Quiet time after which a sender writes to the idle socket itself.
    direct_write_gap: Duration,
    /// Bytes a batch contains at most, unless its one frame is larger.
    batch_max: usize,
}

#[derive(Default)]
struct QueueState {
    batches: VecDeque<Batch>,
    /// Frames in `batches`.
    frames: usize,
    spare: Vec<BytesMut>,
    /// Socket of the writer while it waits with nothing to write.
    idle: Option<IdleSocket>,
    /// Time of the last write, by the writer or directly by a sender.
    last_write: Option<Instant>,
    /// Set when the association is removed; every later push is rejected.
    closed: bool,
}

/// Socket of a lane writer waiting for frames, which senders may write to directly.
pub(crate) struct IdleSocket {
    /// Write half of the lane's connection.
    pub(crate) socket: Arc<OwnedWriteHalf>,
    /// Incarnation at the other end of the connection.
    pub(crate) peer_uid: u64,
}

/// Outcome of [`LaneQueue::push`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// The frame waits for the writer.
    Queued,
    /// The sender wrote the frame to the idle writer's socket.
    Written,
}

/// Consecutive frames for the same destination, written with one system call.
pub(crate) struct Batch {
    /// Incarnation the frames are for; `None` for whichever incarnation lives at the address.
    pub(crate) target_uid: Option<u64>,
    /// Quarantine notices: the one kind of frame still written to a quarantined incarnation.
    pub(crate) farewell: bool,
    /// Number of frames in `bytes`.
    pub(crate) frames: u64,
    /// Frames, each with its length header.
    pub(crate) bytes: BytesMut,
}

/// Reason [`LaneQueue::push`] queued nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue held its capacity of frames.
    Full,
    /// The queue was closed with its association.
    Closed,
}

impl LaneQueue {
    pub(crate) fn new(capacity: usize, batch_max: usize, direct_write_gap: Duration) -> Self {
        Self {
            direct_write_gap,
            state: Mutex::default(),
            ready: Notify::new(),
            capacity: capacity.max(1),
            batch_max: batch_max.max(1),
        }
    }

    /// Appends one frame whose body of `len` bytes `encode` writes, or writes it to the
    /// idle writer's socket at once.
    ///
    /// `encode` runs under the queue's lock and must write exactly `len` bytes.
    pub(crate) fn push<F: FnOnce(&mut BytesMut)>(
        &self,
        target_uid: Option<u64>,
        farewell: bool,
        len: usize,
        encode: F,
    ) -> Result<Pushed, PushError> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(PushError::Closed);
        }
        if state.frames >= self.capacity {
            return Err(PushError::Full);
        }
        let needed = FRAME_HEADER_LEN + len;
        let encode = match self.write_directly(&mut state, target_uid, farewell, len, encode) {
            Ok(Pushed::Written) => return Ok(Pushed::Written),
            Ok(Pushed::Queued) => {
                drop(state);
                self.ready.notify_one();
                return Ok(Pushed::Queued);
            }
            Err(encode) => encode,
        };

        let was_empty = state.frames == 0;
        let fits = state.batches.back().is_some_and(|batch| {
            batch.target_uid == target_uid
                && batch.farewell == farewell
                && batch.bytes.len() + needed <= self.batch_max
        });
        if !fits {
            let bytes = state.spare.pop().unwrap_or_default();
            state.batches.push_back(Batch {
                target_uid,
                farewell,
                frames: 0,
                bytes,
            });
        }
        state.frames += 1;
        let batch = state
            .batches
            .back_mut()
            .expect("a batch was pushed above when none fitted");
        encode_frame(&mut batch.bytes, len, encode);
        batch.frames += 1;
        drop(state);
        if was_empty {
            self.ready.notify_one();
        }
        Ok(Pushed::Queued)
    }

    /// Writes the frame to the idle writer's socket when the lane has been quiet for the
    /// direct write gap. Returns `encode` unused when the frame must be queued instead.
    ///
    /// What the socket does not take is queued as a batch of its own. The socket is then
    /// withdrawn, so later frames queue behind it.
    fn write_directly<F: FnOnce(&mut BytesMut)>(
        &self,
        state: &mut QueueState,
        target_uid: Option<u64>,
        farewell: bool,
        len: usize,
        encode: F,
    ) -> Result<Pushed, F> {
        // Frames already queued go first.
        let Some(idle) = state.idle.as_ref().filter(|_| state.frames == 0) else {
            return Err(encode);
        };
        // Quarantine notices and frames for another incarnation go through the writer,
        // because it decides what to drop.
        if farewell || target_uid.is_some_and(|uid| uid != idle.peer_uid) {
            return Err(encode);
        }

        let now = Instant::now();
        if state
            .last_write
            .is_some_and(|at| now.saturating_duration_since(at) < self.direct_write_gap)
        {
            return Err(encode);
        }

        let mut bytes = state.spare.pop().unwrap_or_default();
        encode_frame(&mut bytes, len, encode);
        let written = idle.socket.try_write(&bytes);
        state.last_write = Some(now);

        match written {
            Ok(n) if n == bytes.len() => {
                self.keep_spare(state, bytes);
                Ok(Pushed::Written)
            }
            // A full socket buffer or a failed connection: the writer sends the rest, or
            // meets the failure itself and reconnects.
            Ok(n) => {
                bytes.advance(n);
                Ok(queue_remainder(state, target_uid, bytes))
            }
            Err(_) => Ok(queue_remainder(state, target_uid, bytes)),
        }
    }

    /// Leaves `idle` for senders to write to while the writer waits; returns false, leaving
    /// nothing, when frames are waiting.
    pub(crate) fn set_idle(&self, idle: IdleSocket) -> bool {
        let mut state = lock(&self.state);
        if state.frames > 0 {
            return false;
        }
        state.idle = Some(idle);
        state.last_write = Some(Instant::now());
        true
    }

    /// Withdraws the idle writer's socket, so only the writer writes to it.
    pub(crate) fn clear_idle(&self) {
        lock(&self.state).idle = None;
    }

    /// Takes the oldest batch, if any.
    pub(crate) fn take(&self) -> Option<Batch> {
        let mut state = lock(&self.state);
        let batch = state.batches.pop_front()?;
        state.frames -= batch.frames as usize;
        Some(batch)
    }

    /// Puts `batch`, taken last, back at the head of the queue. Returns it when the queue
    /// was closed since.
    pub(crate) fn put_back(&self, batch: Batch) -> Result<(), Batch> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(batch);
        }
        state.frames += batch.frames as usize;
        state.batches.push_front(batch);
        Ok(())
    }

    /// Returns the buffer of a written batch for reuse.
    pub(crate) fn recycle(&self, bytes: BytesMut) {
        self.keep_spare(&mut lock(&self.state), bytes);
    }

    /// Keeps `bytes` for a later batch, unless enough are kept or it outgrew two batches,
    /// as a buffer that carried one large frame does.
    fn keep_spare(&self, state: &mut QueueState, mut bytes: BytesMut) {
        if bytes.capacity() > 2 * self.batch_max || state.spare.len() >= SPARE_BUFFERS {
            return;
        }
        bytes.clear();
        state.spare.push(bytes);
    }

    /// Returns true when no frame waits.
    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.state).frames == 0
    }

    /// Drops every queued frame; returns how many.
    pub(crate) fn clear(&self) -> u64 {
        let mut state = lock(&self.state);
        let dropped = state.frames as u64;
        state.batches.clear();
        state.frames = 0;
        dropped
    }

    /// Drops every queued frame and rejects all later pushes; returns how many were dropped.
    pub(crate) fn close(&self) -> u64 {
        let mut state = lock(&self.state);
        state.closed = true;
        state.idle = None;
        state.spare = Vec::new();
        let dropped = state.frames as u64;
        state.batches.clear();
        state.frames = 0;
        dropped
    }

    /// Waits until a push after the last wait, or one that found the queue empty, happened.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }
}

/// Queues what a direct write left unwritten and withdraws the idle socket, so that later
/// frames queue behind it.
fn queue_remainder(state: &mut QueueState, target_uid: Option<u64>, bytes: BytesMut) -> Pushed {
    state.idle = None;
    state.frames += 1;
    state.batches.push_back(Batch {
        target_uid,
        farewell: false,
        frames: 1,
        bytes,
    });
    Pushed::Queued
}

/// Appends a frame header for a body of `len` bytes and the body that `encode` writes.
fn encode_frame(bytes: &mut BytesMut, len: usize, encode: impl FnOnce(&mut BytesMut)) {
    bytes.reserve(FRAME_HEADER_LEN + len);
    // `len` fits in u32: callers check it against the lane's frame limit.
    bytes.put_u32(len as u32);
    let start = bytes.len();
    encode(bytes);
    debug_assert_eq!(bytes.len() - start, len, "encoder wrote a wrong length");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_bytes(
        queue: &LaneQueue,
        target: Option<u64>,
        body: &[u8],
    ) -> Result<Pushed, PushError> {
        queue.push(target, false, body.len(), |buffer| {
            buffer.extend_from_slice(body)
        })
    }

    /// Creates a queue that never writes directly, because its gap outlasts any test.
    fn batching_queue(capacity: usize, batch_max: usize) -> LaneQueue {
        LaneQueue::new(capacity, batch_max, Duration::from_secs(3600))
    }

    /// Returns an idle socket of a loopback connection and the connection's other end.
    async fn loopback(peer_uid: u64) -> (IdleSocket, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(address), listener.accept());
        let (_read, write) = client.unwrap().into_split();
        let idle = IdleSocket {
            socket: Arc::new(write),
            peer_uid,
        };
        (idle, accepted.unwrap().0)
    }

    #[test]
    fn queue_batches_frames_of_one_target() {
        let queue = batching_queue(10, 1024);
        push_bytes(&queue, Some(1), b"ab").unwrap();
        push_bytes(&queue, Some(1), b"cde").unwrap();
        let batch = queue.take().unwrap();
        assert_eq!(batch.frames, 2);
        assert_eq!(&batch.bytes[..], b"\0\0\0\x02ab\0\0\0\x03cde");
        assert!(queue.take().is_none());
        assert!(queue.is_empty());
    }

    #[test]
    fn queue_starts_batch_on_new_target_or_size() {
        let queue = batching_queue(10, 16);
        push_bytes(&queue, Some(1), b"ab").unwrap();
        push_bytes(&queue, Some(2), b"cd").unwrap();
        push_bytes(&queue, Some(2), b"0123456789").unwrap();
        let sizes: Vec<(Option<u64>, u64)> = std::iter::from_fn(|| queue.take())
            .map(|batch| (batch.target_uid, batch.frames))
            .collect();
        assert_eq!(sizes, [(Some(1), 1), (Some(2), 1), (Some(2), 1)]);
    }

    #[test]
    fn queue_full_rejects_until_batch_taken() {
        let queue = batching_queue(2, 1024);
        push_bytes(&queue, None, b"a").unwrap();
        push_bytes(&queue, None, b"b").unwrap();
        assert_eq!(push_bytes(&queue, None, b"c"), Err(PushError::Full));
        let batch = queue.take().unwrap();
        queue.recycle(batch.bytes);
        push_bytes(&queue, None, b"d").unwrap();
        assert_eq!(queue.clear(), 1);
        assert!(queue.is_empty());
    }

    #[test]
    fn closed_queue_rejects_pushes() {
        let queue = batching_queue(4, 1024);
        push_bytes(&queue, None, b"a").unwrap();
        push_bytes(&queue, Some(3), b"b").unwrap();
        assert_eq!(queue.close(), 2);
        assert!(queue.is_empty());
        assert_eq!(push_bytes(&queue, None, b"c"), Err(PushError::Closed));
        assert!(queue.take().is_none());
    }

    #[test]
    fn put_back_batch_comes_first() {
        let queue = batching_queue(4, 1024);
        push_bytes(&queue, Some(1), b"a").unwrap();
        push_bytes(&queue, Some(2), b"b").unwrap();
        let first = queue.take().unwrap();
        assert!(queue.put_back(first).is_ok());
        assert_eq!(queue.take().unwrap().target_uid, Some(1));
        let second = queue.take().unwrap();
        assert_eq!(queue.close(), 0);
        let returned = queue.put_back(second).unwrap_err();
        assert_eq!(returned.target_uid, Some(2));
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn queue_first_push_wakes_writer() {
        let queue = Arc::new(batching_queue(4, 64));
        let waiter = {
            let queue = queue.clone();
            tokio::spawn(async move {
                queue.ready().await;
                queue.take().map(|batch| batch.frames)
            })
        };
        tokio::task::yield_now().await;
        push_bytes(&queue, None, b"x").unwrap();
        let woken = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(woken.expect("the push woke no waiter").unwrap(), Some(1));
    }

    #[tokio::test]
    async fn queue_writes_directly_to_idle_socket() {
        use tokio::io::AsyncReadExt;

        let queue = LaneQueue::new(4, 64, Duration::ZERO);
        let (idle, mut other_end) = loopback(7).await;
        assert!(queue.set_idle(idle));
        assert_eq!(push_bytes(&queue, Some(7), b"hi").unwrap(), Pushed::Written);
        assert_eq!(push_bytes(&queue, None, b"yo").unwrap(), Pushed::Written);
        assert!(queue.is_empty());
        let mut received = [0u8; 12];
        other_end.read_exact(&mut received).await.unwrap();
        assert_eq!(&received, b"\0\0\0\x02hi\0\0\0\x02yo");
    }

    #[tokio::test]
    async fn queue_keeps_other_frames_from_idle_socket() {
        let queue = LaneQueue::new(4, 64, Duration::ZERO);
        let (idle, _other_end) = loopback(7).await;
        assert!(queue.set_idle(idle));
        // For another incarnation: the writer drops it.
        assert_eq!(push_bytes(&queue, Some(8), b"a").unwrap(), Pushed::Queued);
        // Behind a queued frame: written after it, by the writer.
        assert_eq!(push_bytes(&queue, Some(7), b"b").unwrap(), Pushed::Queued);
        let farewell = queue.push(Some(7), true, 1, |buffer| buffer.put_u8(b'c'));
        assert_eq!(farewell.unwrap(), Pushed::Queued);
        let batches: Vec<(Option<u64>, bool, u64)> = std::iter::from_fn(|| queue.take())
            .map(|batch| (batch.target_uid, batch.farewell, batch.frames))
            .collect();
        assert_eq!(
            batches,
            [(Some(8), false, 1), (Some(7), false, 1), (Some(7), true, 1)]
        );
    }

    #[tokio::test]
    async fn queue_batches_frames_within_gap() {
        let queue = batching_queue(4, 64);
        let (idle, _other_end) = loopback(7).await;
        assert!(queue.set_idle(idle));
        assert_eq!(push_bytes(&queue, Some(7), b"a").unwrap(), Pushed::Queued);
        let (idle, _other_end) = loopback(7).await;
        assert!(
            !queue.set_idle(idle),
            "frames wait, so the writer must not go idle"
        );
    }

    #[tokio::test]
    async fn queue_cleared_idle_socket_is_not_used() {
        let queue = LaneQueue::new(4, 64, Duration::ZERO);
        let (idle, _other_end) = loopback(7).await;
        assert!(queue.set_idle(idle));
        queue.clear_idle();
        assert_eq!(push_bytes(&queue, Some(7), b"a").unwrap(), Pushed::Queued);
    }
}

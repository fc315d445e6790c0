//! Outbound queue of one lane: frames encoded back to back into batches that the lane
//! writer takes whole.
//!
//! Senders encode each frame straight into the newest batch under a short lock, so a send
//! allocates nothing once the batch buffers exist. The writer is woken only when the queue
//! stops being empty, so while it writes, later senders just append.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::{BufMut, BytesMut};
use tokio::sync::Notify;

use super::lock;
use crate::frame::FRAME_HEADER_LEN;

/// Spent batch buffers kept for reuse, at most.
const SPARE_BUFFERS: usize = 2;

/// Frames waiting for one lane writer.
pub(crate) struct LaneQueue {
    state: Mutex<QueueState>,
    /// Wakes the writer when the queue stops being empty.
    ready: Notify,
    /// Frames queued at most; beyond it a push fails.
    capacity: usize,
    /// Bytes a batch contains at most, unless its one frame is larger.
    batch_max: usize,
}

#[derive(Default)]
struct QueueState {
    batches: VecDeque<Batch>,
    /// Frames in `batches`.
    frames: usize,
    spare: Vec<BytesMut>,
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

/// The queue held `capacity` frames; nothing was queued.
#[derive(Debug)]
pub(crate) struct QueueFull;

impl LaneQueue {
    pub(crate) fn new(capacity: usize, batch_max: usize) -> Self {
        Self {
            state: Mutex::default(),
            ready: Notify::new(),
            capacity: capacity.max(1),
            batch_max: batch_max.max(1),
        }
    }

    /// Appends one frame whose body of `len` bytes `encode` writes.
    ///
    /// `encode` runs under the queue's lock and must write exactly `len` bytes.
    pub(crate) fn push(
        &self,
        target_uid: Option<u64>,
        farewell: bool,
        len: usize,
        encode: impl FnOnce(&mut BytesMut),
    ) -> Result<(), QueueFull> {
        let mut state = lock(&self.state);
        if state.frames >= self.capacity {
            return Err(QueueFull);
        }
        let was_empty = state.frames == 0;
        let needed = FRAME_HEADER_LEN + len;
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
        batch.bytes.reserve(needed);
        // `len` fits in u32: callers check it against the lane's frame limit.
        batch.bytes.put_u32(len as u32);
        let start = batch.bytes.len();
        encode(&mut batch.bytes);
        debug_assert_eq!(
            batch.bytes.len() - start,
            len,
            "encoder wrote a wrong length"
        );
        batch.frames += 1;
        drop(state);
        if was_empty {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Takes the oldest batch, if any.
    pub(crate) fn take(&self) -> Option<Batch> {
        let mut state = lock(&self.state);
        let batch = state.batches.pop_front()?;
        state.frames -= batch.frames as usize;
        Some(batch)
    }

    /// Returns the buffer of a written batch for reuse.
    pub(crate) fn recycle(&self, mut bytes: BytesMut) {
        if bytes.capacity() > 2 * self.batch_max {
            return;
        }
        bytes.clear();
        let mut state = lock(&self.state);
        if state.spare.len() < SPARE_BUFFERS {
            state.spare.push(bytes);
        }
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

    /// Waits until a push after the last wait, or one that found the queue empty, happened.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_bytes(queue: &LaneQueue, target: Option<u64>, body: &[u8]) -> Result<(), QueueFull> {
        queue.push(target, false, body.len(), |buffer| {
            buffer.extend_from_slice(body)
        })
    }

    #[test]
    fn queue_batches_frames_of_one_target() {
        let queue = LaneQueue::new(10, 1024);
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
        let queue = LaneQueue::new(10, 16);
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
        let queue = LaneQueue::new(2, 1024);
        push_bytes(&queue, None, b"a").unwrap();
        push_bytes(&queue, None, b"b").unwrap();
        assert!(push_bytes(&queue, None, b"c").is_err());
        let batch = queue.take().unwrap();
        queue.recycle(batch.bytes);
        push_bytes(&queue, None, b"d").unwrap();
        assert_eq!(queue.clear(), 1);
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn queue_first_push_wakes_writer() {
        let queue = std::sync::Arc::new(LaneQueue::new(4, 64));
        let waiter = {
            let queue = queue.clone();
            tokio::spawn(async move {
                queue.ready().await;
                queue.take().map(|batch| batch.frames)
            })
        };
        tokio::task::yield_now().await;
        push_bytes(&queue, None, b"x").unwrap();
        assert_eq!(waiter.await.unwrap(), Some(1));
    }
}

//! A future raced against two cancellation tokens, which checks the tokens only when one of
//! them woke the task.
//!
//! `tokio::select!` polls every branch each time the task wakes, and polling a
//! `CancellationToken::cancelled` future takes two locks (the token's and its notifier's,
//! in tokio-util 0.7). A reading task wakes for every read, so that cost came with every
//! message received.
//! [`until_cancelled`] polls the tokens' futures under a waker of its own, and polls them
//! again only after that waker was woken.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use tokio_util::sync::CancellationToken;

use super::lock;

/// Runs `work` until it completes, or until one of `tokens` is cancelled first.
///
/// Returns the work's output, or the index in `tokens` of the token found cancelled. The
/// tokens are checked before the work, in order, at the first poll and after every
/// cancellation.
pub(super) async fn until_cancelled<T>(
    work: impl Future<Output = T>,
    tokens: [&CancellationToken; 2],
) -> Result<T, usize> {
    let mut work = pin!(work);
    let mut first_wait = pin!(tokens[0].cancelled());
    let mut second_wait = pin!(tokens[1].cancelled());
    let signal = Arc::new(Signal::default());
    let signal_waker = Waker::from(Arc::clone(&signal));
    let mut registered = false;
    poll_fn(|cx| {
        signal.follow(cx.waker());
        // The flag is cleared before the futures are polled, so a cancellation during the
        // polls sets it again and wakes the task once more.
        let woken = signal.woken.swap(false, Ordering::AcqRel);
        if woken || !registered {
            registered = true;
            let mut token_cx = Context::from_waker(&signal_waker);
            if first_wait.as_mut().poll(&mut token_cx).is_ready() {
                return Poll::Ready(Err(0));
            }
            if second_wait.as_mut().poll(&mut token_cx).is_ready() {
                return Poll::Ready(Err(1));
            }
        }
        work.as_mut().poll(cx).map(Ok)
    })
    .await
}

/// Waker of the tokens' futures: records that a token woke the task, then wakes it.
#[derive(Default)]
struct Signal {
    woken: AtomicBool,
    /// Waker of the task running [`until_cancelled`], from its last poll.
    task: Mutex<Option<Waker>>,
}

impl Signal {
    /// Keeps `waker` as the task's waker, unless the one kept already wakes the same task.
    fn follow(&self, waker: &Waker) {
        let mut task = lock(&self.task);
        if !task.as_ref().is_some_and(|kept| kept.will_wake(waker)) {
            *task = Some(waker.clone());
        }
    }
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = lock(&self.task).clone();
        if let Some(task) = task {
            task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn finished_work_returns_its_output() {
        let (first, second) = (CancellationToken::new(), CancellationToken::new());
        let (sender, receiver) = oneshot::channel();
        let work = tokio::spawn(async move {
            until_cancelled(receiver, [&first, &second])
                .await
                .map(|received| received.ok())
        });
        sender.send(7).unwrap();
        assert_eq!(work.await.unwrap(), Ok(Some(7)));
    }

    #[tokio::test]
    async fn cancelled_token_stops_pending_work() {
        for index in 0..2 {
            let tokens = [CancellationToken::new(), CancellationToken::new()];
            let cancel = tokens[index].clone();
            let (started, polled) = oneshot::channel::<()>();
            let work = tokio::spawn(async move {
                let work = async {
                    drop(started);
                    std::future::pending::<()>().await
                };
                until_cancelled(work, [&tokens[0], &tokens[1]]).await
            });
            // The work was polled once, so the tokens' futures are registered.
            let _ = polled.await;
            cancel.cancel();
            let ended = tokio::time::timeout(Duration::from_secs(10), work)
                .await
                .expect("the cancellation woke the task")
                .unwrap();
            assert_eq!(ended, Err(index));
        }
    }

    #[tokio::test]
    async fn cancelled_token_wins_over_ready_work() {
        let (first, second) = (CancellationToken::new(), CancellationToken::new());
        second.cancel();
        assert_eq!(
            until_cancelled(async { 1 }, [&first, &second]).await,
            Err(1)
        );
    }

    #[tokio::test]
    async fn cancellation_between_wakes_is_seen() {
        let (first, second) = (CancellationToken::new(), CancellationToken::new());
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let cancel = first.clone();
        let work = tokio::spawn(async move {
            let work = async {
                let mut received = 0;
                while receiver.recv().await.is_some() {
                    received += 1;
                }
                received
            };
            until_cancelled(work, [&first, &second]).await
        });
        // Wakes for the work alone, then one for the token.
        for value in 0..100 {
            sender.send(value).unwrap();
            tokio::task::yield_now().await;
        }
        cancel.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .expect("the cancellation woke the task")
            .unwrap();
        assert_eq!(ended, Err(0));
    }
}

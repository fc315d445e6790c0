use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Signal {
    Watch(u32),
    Unwatch(u32),
    Terminated(u32),
}

/// One direction of a network that drops, duplicates and delays (so reorders) messages.
struct LossyLink<T> {
    in_flight: Vec<(Instant, T)>,
    drop_rate: f64,
    duplicate_rate: f64,
    max_delay_ms: u64,
}

impl<T: Clone> LossyLink<T> {
    fn new(drop_rate: f64, duplicate_rate: f64, max_delay_ms: u64) -> Self {
        Self {
            in_flight: Vec::new(),
            drop_rate,
            duplicate_rate,
            max_delay_ms,
        }
    }

    fn send(&mut self, item: T, now: Instant, rng: &mut SmallRng) {
        if rng.random_bool(self.drop_rate) {
            return;
        }
        let copies = if rng.random_bool(self.duplicate_rate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = Duration::from_millis(rng.random_range(0..=self.max_delay_ms));
            self.in_flight.push((now + delay, item.clone()));
        }
    }

    fn take_due(&mut self, now: Instant) -> Vec<T> {
        let (due, later): (Vec<_>, Vec<_>) =
            self.in_flight.drain(..).partition(|(at, _)| *at <= now);
        self.in_flight = later;
        due.into_iter().map(|(_, item)| item).collect()
    }
}

fn signals(count: u32) -> Vec<Signal> {
    (0..count)
        .map(|i| match i % 3 {
            0 => Signal::Watch(i),
            1 => Signal::Unwatch(i),
            _ => Signal::Terminated(i),
        })
        .collect()
}

/// Runs sender and receiver over lossy links on a virtual clock and returns what was delivered.
fn run_lossy(seed: u64, count: u32) -> (Vec<Signal>, usize) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut now = start;
    let step = Duration::from_millis(10);
    let mut sender = SystemMessageSender::new(RedeliverySettings::default());
    let mut receiver = SystemMessageReceiver::new();
    let mut forward = LossyLink::new(0.3, 0.2, 300);
    let mut backward = LossyLink::new(0.3, 0.2, 300);
    let mut delivered = Vec::new();
    let mut to_send = signals(count).into_iter();

    // Bounded: one virtual hour of 10 ms steps.
    for round in 0..360_000u32 {
        if round % 5 == 0 {
            if let Some(signal) = to_send.next() {
                let seq_nr = sender.send(signal.clone(), now).unwrap();
                forward.send((seq_nr, signal), now, &mut rng);
            }
        }
        for (seq_nr, signal) in sender.tick(now).unwrap() {
            forward.send((seq_nr, signal), now, &mut rng);
        }
        for (seq_nr, signal) in forward.take_due(now) {
            let receipt = receiver.receive(seq_nr);
            if receipt.deliver {
                delivered.push(signal);
            }
            backward.send(receipt.ack, now, &mut rng);
        }
        for ack in backward.take_due(now) {
            sender.on_ack(ack, now);
        }
        if delivered.len() == count as usize && sender.unacked_len() == 0 {
            break;
        }
        now += step;
    }
    (delivered, sender.unacked_len())
}

#[test]
fn lossy_link_delivers_exactly_once_in_order() {
    for seed in 0..20 {
        let (delivered, unacked) = run_lossy(seed, 200);
        assert_eq!(delivered, signals(200), "seed {seed}");
        assert_eq!(unacked, 0, "seed {seed}");
    }
}

#[test]
fn receiver_drops_duplicates_and_gaps() {
    let mut receiver = SystemMessageReceiver::new();
    assert_eq!(
        receiver.receive(2),
        Receipt {
            deliver: false,
            ack: 0
        }
    );
    assert_eq!(
        receiver.receive(1),
        Receipt {
            deliver: true,
            ack: 1
        }
    );
    assert_eq!(
        receiver.receive(1),
        Receipt {
            deliver: false,
            ack: 1
        }
    );
    assert_eq!(
        receiver.receive(2),
        Receipt {
            deliver: true,
            ack: 2
        }
    );
    assert_eq!(receiver.delivered(), 2);
}

#[test]
fn resends_unacked_each_interval() {
    let start = Instant::now();
    let mut sender = SystemMessageSender::new(RedeliverySettings::default());
    assert_eq!(sender.send("a", start).unwrap(), 1);
    assert_eq!(sender.send("b", start).unwrap(), 2);
    assert!(sender
        .tick(start + Duration::from_millis(999))
        .unwrap()
        .is_empty());
    let first = start + Duration::from_secs(1);
    assert_eq!(sender.tick(first).unwrap(), vec![(1, "a"), (2, "b")]);
    sender.on_ack(1, first);
    let second = first + Duration::from_secs(1);
    assert_eq!(sender.tick(second).unwrap(), vec![(2, "b")]);
    sender.on_ack(2, second);
    assert_eq!(sender.next_resend(), None);
    assert!(sender
        .tick(second + Duration::from_secs(5))
        .unwrap()
        .is_empty());
}

#[test]
fn overflow_is_an_error() {
    let start = Instant::now();
    let settings = RedeliverySettings {
        buffer_size: 10,
        ..RedeliverySettings::default()
    };
    let mut sender = SystemMessageSender::new(settings);
    for i in 0..10 {
        sender.send(i, start).unwrap();
    }
    assert_eq!(
        sender.send(10, start),
        Err(RedeliveryError::BufferOverflow { limit: 10 })
    );
    sender.on_ack(1, start);
    assert_eq!(sender.send(10, start), Ok(11));
}

#[test]
fn gives_up_after_timeout() {
    let start = Instant::now();
    let mut sender = SystemMessageSender::new(RedeliverySettings::default());
    sender.send("watch", start).unwrap();
    let almost = start + Duration::from_secs(6 * 3600 - 1);
    assert!(sender.tick(almost).is_ok());
    let late = start + Duration::from_secs(6 * 3600);
    assert!(matches!(
        sender.tick(late),
        Err(RedeliveryError::GaveUp { seq_nr: 1, .. })
    ));
}

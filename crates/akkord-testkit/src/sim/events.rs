//! The log of events that nodes published.

use std::time::Duration;

/// One event published by a node, with the virtual time and the node's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent<A, E> {
    /// Virtual time since the start of the simulation at which the node published the event.
    pub at: Duration,
    /// Address of the node that published the event.
    pub node: A,
    /// The event.
    pub event: E,
}

/// Events published by all nodes, in the order the simulator processed them.
///
/// Times in the log never decrease. Recording can be switched off for long benchmark runs
/// that do not read events, see [`EventLog::set_recording`].
#[derive(Debug, Clone)]
pub struct EventLog<A, E> {
    entries: Vec<RecordedEvent<A, E>>,
    recording: bool,
}

impl<A: PartialEq, E> EventLog<A, E> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Vec::new(),
            recording: true,
        }
    }

    pub(crate) fn record(&mut self, at: Duration, node: &A, event: E)
    where
        A: Clone,
    {
        if self.recording {
            self.entries.push(RecordedEvent {
                at,
                node: node.clone(),
                event,
            });
        }
    }

    /// Switches recording on or off; entries already recorded stay.
    pub fn set_recording(&mut self, recording: bool) {
        self.recording = recording;
    }

    /// Returns true when new events are recorded.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Returns all recorded events, oldest first.
    pub fn all(&self) -> &[RecordedEvent<A, E>] {
        &self.entries
    }

    /// Returns the number of recorded events.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true when no event is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Iterates over the events published by the node at `node`.
    pub fn from_node<'a>(
        &'a self,
        node: &'a A,
    ) -> impl Iterator<Item = &'a RecordedEvent<A, E>> + 'a {
        self.entries.iter().filter(move |entry| entry.node == *node)
    }

    /// Returns the first recorded event that matches `predicate`.
    pub fn find(
        &self,
        mut predicate: impl FnMut(&RecordedEvent<A, E>) -> bool,
    ) -> Option<&RecordedEvent<A, E>> {
        self.entries.iter().find(|entry| predicate(entry))
    }

    /// Returns true when a recorded event matches `predicate`.
    pub fn any(&self, predicate: impl FnMut(&RecordedEvent<A, E>) -> bool) -> bool {
        self.find(predicate).is_some()
    }

    /// Removes and returns all recorded events, oldest first.
    pub fn take(&mut self) -> Vec<RecordedEvent<A, E>> {
        std::mem::take(&mut self.entries)
    }

    /// Removes and returns the events that match `predicate`, oldest first; the others stay.
    pub fn drain_matching(
        &mut self,
        mut predicate: impl FnMut(&RecordedEvent<A, E>) -> bool,
    ) -> Vec<RecordedEvent<A, E>> {
        let (matching, rest) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|entry| predicate(entry));
        self.entries = rest;
        matching
    }

    /// Removes all recorded events.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> EventLog<&'static str, u32> {
        let mut log = EventLog::new();
        log.record(Duration::from_millis(1), &"a", 1);
        log.record(Duration::from_millis(2), &"b", 2);
        log.record(Duration::from_millis(3), &"a", 3);
        log
    }

    #[test]
    fn log_filters_by_node() {
        let log = log();
        let events: Vec<u32> = log.from_node(&"a").map(|entry| entry.event).collect();
        assert_eq!(events, vec![1, 3]);
        assert_eq!(log.find(|entry| entry.event > 1).map(|e| e.node), Some("b"));
    }

    #[test]
    fn drain_matching_keeps_the_rest_in_order() {
        let mut log = log();
        let drained = log.drain_matching(|entry| entry.node == "a");
        assert_eq!(drained.len(), 2);
        assert_eq!(log.len(), 1);
        assert_eq!(log.all()[0].event, 2);
        assert_eq!(log.take().len(), 1);
        assert!(log.is_empty());
    }

    #[test]
    fn recording_can_be_switched_off() {
        let mut log = log();
        log.set_recording(false);
        log.record(Duration::from_millis(4), &"c", 4);
        assert_eq!(log.len(), 3);
        assert!(!log.is_recording());
    }
}

//! Leases: a named lock held by at most one owner at a time, used by the lease-majority
//! split brain strategy.
//!
//! A lease lives outside the cluster (a Kubernetes lease, a database row), so two sides of a
//! network partition compete for it and only one can win. The split brain resolver core never
//! calls a lease itself: it outputs acquire and release commands, the shell performs them
//! with a [`Lease`] and feeds the result back.
//!
//! Invariant of every implementation: at most one owner holds the lease at any time, and
//! only the holder can release it.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

/// Failure to reach the lease's backing store; the lease state is unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease {lease:?} is unavailable: {reason}; retry later or check the lease backend")]
pub struct LeaseError {
    /// Name of the lease.
    pub lease: String,
    /// What failed.
    pub reason: String,
}

/// A lock shared between the nodes of a cluster, acquired and released by owner name.
///
/// Implementations that talk to a remote store may block; the shell calls them outside the
/// protocol cores.
pub trait Lease: Send + Sync + fmt::Debug {
    /// Returns the name of the lease.
    fn name(&self) -> &str;

    /// Acquires the lease for `owner`; returns true when `owner` holds it afterwards,
    /// including when it already held it.
    ///
    /// # Errors
    ///
    /// Returns [`LeaseError`] when the backing store cannot be reached.
    fn acquire(&self, owner: &str) -> Result<bool, LeaseError>;

    /// Releases the lease held by `owner`; returns false when `owner` did not hold it.
    ///
    /// # Errors
    ///
    /// Returns [`LeaseError`] when the backing store cannot be reached.
    fn release(&self, owner: &str) -> Result<bool, LeaseError>;

    /// Returns true when `owner` holds the lease, according to the state cached in this process.
    fn check(&self, owner: &str) -> bool;
}

/// Lease kept in memory, shared by every clone in one process.
///
/// Tests and simulations give a clone to each simulated node, so the nodes compete for one
/// lease as they would for an external one.
///
/// NOTE: the lease never expires. A holder that crashes without releasing keeps it until
/// [`InProcessLease::force_release`] is called, unlike external leases with a time to live.
#[derive(Clone, Debug)]
pub struct InProcessLease {
    name: String,
    holder: Arc<Mutex<Option<String>>>,
}

impl InProcessLease {
    /// Creates a free lease called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            holder: Arc::new(Mutex::new(None)),
        }
    }

    /// Returns the current holder, if any.
    pub fn holder(&self) -> Option<String> {
        self.lock().clone()
    }

    /// Releases the lease regardless of its holder, as an operator would after a holder crashed.
    pub fn force_release(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> MutexGuard<'_, Option<String>> {
        // A panic in another thread while holding the lock cannot leave the Option half
        // written, so the value is still consistent.
        self.holder
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Lease for InProcessLease {
    fn name(&self) -> &str {
        &self.name
    }

    fn acquire(&self, owner: &str) -> Result<bool, LeaseError> {
        let mut holder = self.lock();
        match holder.as_deref() {
            None => {
                *holder = Some(owner.to_owned());
                Ok(true)
            }
            Some(current) => Ok(current == owner),
        }
    }

    fn release(&self, owner: &str) -> Result<bool, LeaseError> {
        let mut holder = self.lock();
        if holder.as_deref() == Some(owner) {
            *holder = None;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn check(&self, owner: &str) -> bool {
        self.lock().as_deref() == Some(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let lease = InProcessLease::new("sbr");
        let other_node = lease.clone();
        assert_eq!(lease.acquire("a"), Ok(true));
        assert_eq!(other_node.acquire("b"), Ok(false));
        assert_eq!(lease.acquire("a"), Ok(true));
        assert!(other_node.check("a"));
        assert!(!other_node.check("b"));
        assert_eq!(other_node.holder().as_deref(), Some("a"));
    }

    #[test]
    fn only_holder_releases() {
        let lease = InProcessLease::new("sbr");
        assert_eq!(lease.acquire("a"), Ok(true));
        assert_eq!(lease.release("b"), Ok(false));
        assert!(lease.check("a"));
        assert_eq!(lease.release("a"), Ok(true));
        assert_eq!(lease.holder(), None);
        assert_eq!(lease.acquire("b"), Ok(true));
    }

    #[test]
    fn force_release_frees_lease() {
        let lease = InProcessLease::new("sbr");
        assert_eq!(lease.acquire("a"), Ok(true));
        lease.force_release();
        assert_eq!(lease.acquire("b"), Ok(true));
        assert_eq!(lease.name(), "sbr");
    }
}

//! Scenario controls of the simulated network: link settings, partitions and healing.

use tracing::debug;

use super::network::LinkConfig;
use super::node::SimNode;
use super::simulator::Simulator;

impl<N: SimNode> Simulator<N> {
    /// Returns the setting of links that have none of their own.
    pub fn default_link(&self) -> &LinkConfig {
        self.network.default_link()
    }

    /// Sets the setting of links that have none of their own.
    ///
    /// # Panics
    ///
    /// Panics when [`LinkConfig::validate`] rejects `config`.
    pub fn set_default_link(&mut self, config: LinkConfig) {
        if let Err(error) = config.validate() {
            panic!("invalid default link setting: {error}");
        }
        self.network.set_default_link(config);
    }

    /// Returns the setting of the directed link from `from` to `to`.
    pub fn link(&self, from: &N::Address, to: &N::Address) -> &LinkConfig {
        match (self.id_of(from), self.id_of(to)) {
            (Some(from), Some(to)) => self.network.link(from, to),
            _ => self.network.default_link(),
        }
    }

    /// Sets the setting of the directed link from `from` to `to`; the reverse link keeps its
    /// own.
    ///
    /// # Panics
    ///
    /// Panics when [`LinkConfig::validate`] rejects `config`.
    pub fn set_link(&mut self, from: &N::Address, to: &N::Address, config: LinkConfig) {
        if let Err(error) = config.validate() {
            panic!("invalid setting for link {from:?} -> {to:?}: {error}");
        }
        let from = self.intern(from);
        let to = self.intern(to);
        self.network.set_link(from, to, config);
    }

    /// Returns the directed link from `from` to `to` to the default setting.
    pub fn reset_link(&mut self, from: &N::Address, to: &N::Address) {
        if let (Some(from), Some(to)) = (self.id_of(from), self.id_of(to)) {
            self.network.reset_link(from, to);
        }
    }

    /// Returns every link to the default setting; partitions stay.
    pub fn reset_links(&mut self) {
        self.network.reset_links();
    }

    /// Blocks every link between a node of `side_a` and a node of `side_b`, both ways.
    ///
    /// Messages on a blocked link are lost, including those already in flight when the
    /// block starts; nothing is held for later. Links within each side stay as they were.
    pub fn partition(&mut self, side_a: &[N::Address], side_b: &[N::Address]) {
        let ids_a: Vec<_> = side_a.iter().map(|address| self.intern(address)).collect();
        let ids_b: Vec<_> = side_b.iter().map(|address| self.intern(address)).collect();
        for &a in &ids_a {
            for &b in &ids_b {
                self.network.block(a, b);
                self.network.block(b, a);
            }
        }
        debug!(side_a = ?side_a, side_b = ?side_b, "network partitioned");
    }

    /// Blocks the directed link from `from` to `to`; messages the other way still arrive.
    pub fn partition_one_way(&mut self, from: &N::Address, to: &N::Address) {
        let from_id = self.intern(from);
        let to_id = self.intern(to);
        self.network.block(from_id, to_id);
        debug!(from = ?from, to = ?to, "link blocked one way");
    }

    /// Cuts the node at `address` off from every other address, both ways, including nodes
    /// added later; its messages to itself still arrive.
    pub fn isolate(&mut self, address: &N::Address) {
        let id = self.intern(address);
        self.network.isolate(id);
        debug!(node = ?address, "node isolated");
    }

    /// Removes the blocks between `a` and `b` in both directions.
    ///
    /// An isolation set by [`Simulator::isolate`] stays until [`Simulator::rejoin`] or
    /// [`Simulator::heal`].
    pub fn heal_link(&mut self, a: &N::Address, b: &N::Address) {
        if let (Some(a), Some(b)) = (self.id_of(a), self.id_of(b)) {
            self.network.unblock(a, b);
            self.network.unblock(b, a);
        }
    }

    /// Removes the block of the directed link from `from` to `to`.
    pub fn heal_one_way(&mut self, from: &N::Address, to: &N::Address) {
        if let (Some(from), Some(to)) = (self.id_of(from), self.id_of(to)) {
            self.network.unblock(from, to);
        }
    }

    /// Ends the isolation of the node at `address`; blocks of single links stay.
    pub fn rejoin(&mut self, address: &N::Address) {
        if let Some(id) = self.id_of(address) {
            self.network.rejoin(id);
        }
    }

    /// Removes every partition, one-way block and isolation; link settings such as latency
    /// and loss stay, see [`Simulator::reset_links`] for those.
    pub fn heal(&mut self) {
        self.network.heal();
        debug!("network healed");
    }

    /// Returns true when messages from `from` to `to` are lost to a partition, a one-way
    /// block or an isolation.
    pub fn is_blocked(&self, from: &N::Address, to: &N::Address) -> bool {
        match (self.id_of(from), self.id_of(to)) {
            (Some(from), Some(to)) => self.network.is_blocked(from, to),
            _ => false,
        }
    }
}

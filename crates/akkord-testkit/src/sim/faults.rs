//! Randomized fault schedules generated from a seed.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::node::SimNode;
use super::simulator::Simulator;

/// Mixed into the seed of a schedule so that its random sequence differs from that of a
/// simulator created with the same seed.
const SCHEDULE_SEED_SALT: u64 = 0x5eed_fa01_7c4e_d11e;

/// Shortest freeze a schedule generates.
const MIN_FREEZE: Duration = Duration::from_millis(100);

/// Kinds and number of faults a [`FaultSchedule`] may contain.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Upper bound on the number of faults before the final heal; the actual number is drawn
    /// from `1..=max_faults`. A freeze and its unfreeze count as one fault.
    pub max_faults: usize,
    /// Upper bound on how long a node stays frozen.
    pub max_freeze: Duration,
    /// Upper bound on the number of nodes that are killed and not yet restarted at one time.
    pub max_dead: usize,
    /// Upper bound on the drop probability of a lossy link.
    pub max_drop_probability: f64,
    /// Whether symmetric partitions into two random sides occur.
    pub partitions: bool,
    /// Whether links blocked in one direction occur.
    pub one_way_blocks: bool,
    /// Whether links that lose messages with some probability occur.
    pub lossy_links: bool,
    /// Whether nodes are frozen for a while.
    pub freezes: bool,
    /// Whether nodes are killed.
    pub kills: bool,
    /// Whether killed or running nodes are restarted as new instances.
    pub restarts: bool,
}

impl Default for FaultConfig {
    /// Returns every kind of fault, at most 8 faults, freezes up to 10 s, one dead node at a
    /// time and lossy links that drop up to half of their messages.
    fn default() -> Self {
        Self {
            max_faults: 8,
            max_freeze: Duration::from_secs(10),
            max_dead: 1,
            max_drop_probability: 0.5,
            partitions: true,
            one_way_blocks: true,
            lossy_links: true,
            freezes: true,
            kills: true,
            restarts: true,
        }
    }
}

/// One fault; nodes are named by their index in the member list the schedule runs with.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Block every link between the two sides, both ways.
    Partition {
        /// Indices of one side.
        side_a: Vec<usize>,
        /// Indices of the other side.
        side_b: Vec<usize>,
    },
    /// Block the link from one node to another in that direction only.
    BlockOneWay {
        /// Index of the sender whose messages are lost.
        from: usize,
        /// Index of the receiver.
        to: usize,
    },
    /// Make the link from one node to another lose messages with a probability.
    LossyLink {
        /// Index of the sender.
        from: usize,
        /// Index of the receiver.
        to: usize,
        /// Probability that a message is lost.
        drop_probability: f64,
    },
    /// Freeze a node, see [`Simulator::freeze`].
    Freeze {
        /// Index of the node.
        node: usize,
    },
    /// Unfreeze a node, see [`Simulator::unfreeze`].
    Unfreeze {
        /// Index of the node.
        node: usize,
    },
    /// Kill a node, see [`Simulator::kill`].
    Kill {
        /// Index of the node.
        node: usize,
    },
    /// Replace a killed or running node by a new instance, see [`Simulator::restart`].
    Restart {
        /// Index of the node.
        node: usize,
    },
    /// Remove every block and return every link to the default setting.
    Heal,
}

/// A fault and the virtual time, counted from the start of the schedule, at which it happens.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedFault {
    /// Time from the start of the schedule.
    pub at: Duration,
    /// The fault.
    pub fault: Fault,
}

/// A bounded list of timed faults over a span of virtual time, generated from a seed.
///
/// The same seed, node count, duration and [`FaultConfig`] always give the same schedule.
/// Every schedule ends with [`Fault::Heal`] at its duration, and every freeze ends before
/// then, so a test can check that the cluster recovers afterwards. Killed nodes stay dead
/// unless the schedule restarts them.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSchedule {
    seed: u64,
    nodes: usize,
    duration: Duration,
    faults: Vec<TimedFault>,
}

impl FaultSchedule {
    /// Generates a schedule for `nodes` nodes over `duration` of virtual time from `seed`.
    pub fn generate(seed: u64, nodes: usize, duration: Duration, config: &FaultConfig) -> Self {
        let mut generator = Generator {
            rng: StdRng::seed_from_u64(seed ^ SCHEDULE_SEED_SALT),
            config,
            duration,
            alive: vec![true; nodes],
            frozen_until: vec![None; nodes],
            faults: Vec::new(),
        };
        if nodes > 0 && config.max_faults > 0 && !duration.is_zero() {
            let count = generator.rng.random_range(1..=config.max_faults);
            let mut times: Vec<Duration> = (0..count)
                .map(|_| random_duration(&mut generator.rng, Duration::ZERO, duration))
                .collect();
            times.sort();
            for at in times {
                generator.add_fault_at(at);
            }
        }
        let mut faults = generator.faults;
        faults.push(TimedFault {
            at: duration,
            fault: Fault::Heal,
        });
        // A stable sort keeps an unfreeze due at the end before the final heal.
        faults.sort_by_key(|fault| fault.at);
        Self {
            seed,
            nodes,
            duration,
            faults,
        }
    }

    /// Returns the seed the schedule was generated from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Returns the number of nodes the schedule was generated for.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// Returns the span of virtual time the schedule covers.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Returns the faults in time order, ending with the final heal.
    pub fn faults(&self) -> &[TimedFault] {
        &self.faults
    }

    /// Runs `sim` for the duration of the schedule, applying each fault at its time.
    ///
    /// `members[i]` is the address of node `i`; a restart replaces it by the new node's
    /// address. `restart` builds the new instance from the old address and a random number
    /// drawn from the simulator's seeded generator, typically used as the new uid.
    ///
    /// # Panics
    ///
    /// Panics when `members` has fewer entries than the schedule has nodes, and when a
    /// restarted node's new address belongs to another live node.
    pub fn run<N: SimNode>(
        &self,
        sim: &mut Simulator<N>,
        members: &mut [N::Address],
        mut restart: impl FnMut(&N::Address, u64) -> N,
    ) {
        assert!(
            members.len() >= self.nodes,
            "the fault schedule names {} nodes but only {} member addresses were given",
            self.nodes,
            members.len()
        );
        let start = sim.elapsed();
        for timed in &self.faults {
            let now = sim.elapsed() - start;
            sim.run_for(timed.at.saturating_sub(now));
            apply(&timed.fault, sim, members, &mut restart);
        }
        let now = sim.elapsed() - start;
        sim.run_for(self.duration.saturating_sub(now));
    }
}

impl fmt::Display for FaultSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "fault schedule from seed {} for {} nodes over {:?}:",
            self.seed, self.nodes, self.duration
        )?;
        for timed in &self.faults {
            writeln!(f, "  at {:?}: {}", timed.at, timed.fault)?;
        }
        Ok(())
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { side_a, side_b } => write!(f, "partition {side_a:?} | {side_b:?}"),
            Fault::BlockOneWay { from, to } => write!(f, "block {from} -> {to}"),
            Fault::LossyLink {
                from,
                to,
                drop_probability,
            } => write!(f, "drop {drop_probability:.2} on {from} -> {to}"),
            Fault::Freeze { node } => write!(f, "freeze {node}"),
            Fault::Unfreeze { node } => write!(f, "unfreeze {node}"),
            Fault::Kill { node } => write!(f, "kill {node}"),
            Fault::Restart { node } => write!(f, "restart {node}"),
            Fault::Heal => write!(f, "heal"),
        }
    }
}

/// Applies one fault to `sim`; faults on nodes that are not in the expected state, such as
/// freezing a dead node, do nothing.
fn apply<N: SimNode>(
    fault: &Fault,
    sim: &mut Simulator<N>,
    members: &mut [N::Address],
    restart: &mut impl FnMut(&N::Address, u64) -> N,
) {
    match fault {
        Fault::Partition { side_a, side_b } => {
            let side_a: Vec<_> = side_a.iter().map(|&i| members[i].clone()).collect();
            let side_b: Vec<_> = side_b.iter().map(|&i| members[i].clone()).collect();
            sim.partition(&side_a, &side_b);
        }
        Fault::BlockOneWay { from, to } => sim.partition_one_way(&members[*from], &members[*to]),
        Fault::LossyLink {
            from,
            to,
            drop_probability,
        } => {
            let (from, to) = (&members[*from], &members[*to]);
            let link = sim
                .link(from, to)
                .clone()
                .with_drop_probability(*drop_probability);
            sim.set_link(from, to, link);
        }
        Fault::Freeze { node } => {
            sim.freeze(&members[*node]);
        }
        Fault::Unfreeze { node } => {
            sim.unfreeze(&members[*node]);
        }
        Fault::Kill { node } => {
            sim.kill(&members[*node]);
        }
        Fault::Restart { node } => {
            let uid = sim.random_u64();
            let replacement = restart(&members[*node], uid);
            members[*node] = sim.restart(&members[*node], replacement);
        }
        Fault::Heal => {
            sim.heal();
            sim.reset_links();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Partition,
    BlockOneWay,
    LossyLink,
    Freeze,
    Kill,
    Restart,
    Heal,
}

/// State of the nodes while a schedule is generated, so that each fault is possible when
/// it happens.
///
/// A node keeps its `frozen_until` when it is killed or restarted, so it is not frozen again
/// before the pending unfreeze, which would cut the new freeze short.
struct Generator<'a> {
    rng: StdRng,
    config: &'a FaultConfig,
    duration: Duration,
    alive: Vec<bool>,
    frozen_until: Vec<Option<Duration>>,
    faults: Vec<TimedFault>,
}

impl Generator<'_> {
    fn add_fault_at(&mut self, at: Duration) {
        let kinds = self.possible_kinds(at);
        let kind = kinds[self.rng.random_range(0..kinds.len())];
        let fault = match kind {
            Kind::Partition => self.partition(),
            Kind::BlockOneWay => {
                let (from, to) = self.pair();
                Fault::BlockOneWay { from, to }
            }
            Kind::LossyLink => {
                let (from, to) = self.pair();
                let max = self.config.max_drop_probability.clamp(0.0, 1.0);
                let drop_probability = self.rng.random::<f64>() * max;
                Fault::LossyLink {
                    from,
                    to,
                    drop_probability,
                }
            }
            Kind::Freeze => self.freeze(at),
            Kind::Kill => {
                let node = self.pick(|g, i| g.alive[i]);
                self.alive[node] = false;
                Fault::Kill { node }
            }
            Kind::Restart => {
                let node = self.rng.random_range(0..self.alive.len());
                self.alive[node] = true;
                Fault::Restart { node }
            }
            Kind::Heal => Fault::Heal,
        };
        self.faults.push(TimedFault { at, fault });
    }

    fn possible_kinds(&self, at: Duration) -> Vec<Kind> {
        let config = self.config;
        let nodes = self.alive.len();
        let alive = self.alive.iter().filter(|alive| **alive).count();
        let dead = nodes - alive;
        let can_freeze = (0..nodes).any(|i| self.is_running(i, at));
        let mut kinds = vec![Kind::Heal];
        let candidates = [
            (Kind::Partition, config.partitions && nodes >= 2),
            (Kind::BlockOneWay, config.one_way_blocks && nodes >= 2),
            (Kind::LossyLink, config.lossy_links && nodes >= 2),
            (
                Kind::Freeze,
                config.freezes && can_freeze && at + MIN_FREEZE < self.duration,
            ),
            (
                Kind::Kill,
                config.kills && dead < config.max_dead && alive > 1,
            ),
            (Kind::Restart, config.restarts),
        ];
        kinds.extend(
            candidates
                .into_iter()
                .filter(|(_, possible)| *possible)
                .map(|(kind, _)| kind),
        );
        kinds
    }

    fn partition(&mut self) -> Fault {
        let mut order: Vec<usize> = (0..self.alive.len()).collect();
        order.shuffle(&mut self.rng);
        let cut = self.rng.random_range(1..order.len());
        let mut side_a = order[..cut].to_vec();
        let mut side_b = order[cut..].to_vec();
        side_a.sort_unstable();
        side_b.sort_unstable();
        Fault::Partition { side_a, side_b }
    }

    fn freeze(&mut self, at: Duration) -> Fault {
        let node = self.pick(|g, i| g.is_running(i, at));
        let longest = self.config.max_freeze.max(MIN_FREEZE);
        let length = random_duration(&mut self.rng, MIN_FREEZE, longest);
        let until = (at + length).min(self.duration);
        self.frozen_until[node] = Some(until);
        self.faults.push(TimedFault {
            at: until,
            fault: Fault::Unfreeze { node },
        });
        Fault::Freeze { node }
    }

    /// Returns two different node indices.
    fn pair(&mut self) -> (usize, usize) {
        let nodes = self.alive.len();
        let from = self.rng.random_range(0..nodes);
        let offset = self.rng.random_range(1..nodes);
        (from, (from + offset) % nodes)
    }

    /// Returns a random node index for which `eligible` holds; the caller checked that one
    /// exists.
    fn pick(&mut self, eligible: impl Fn(&Self, usize) -> bool) -> usize {
        let candidates: Vec<usize> = (0..self.alive.len())
            .filter(|&i| eligible(self, i))
            .collect();
        candidates[self.rng.random_range(0..candidates.len())]
    }

    fn is_running(&self, node: usize, at: Duration) -> bool {
        self.alive[node] && self.frozen_until[node].is_none_or(|until| until <= at)
    }
}

fn random_duration(rng: &mut StdRng, min: Duration, max: Duration) -> Duration {
    if min >= max {
        return min;
    }
    let span = u64::try_from((max - min).as_nanos()).unwrap_or(u64::MAX);
    min + Duration::from_nanos(rng.random_range(0..=span))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn same_seed_same_schedule() {
        let config = FaultConfig::default();
        let first = FaultSchedule::generate(11, 5, MINUTE, &config);
        let again = FaultSchedule::generate(11, 5, MINUTE, &config);
        assert_eq!(first, again);
        let schedules: Vec<_> = (0..20)
            .map(|seed| FaultSchedule::generate(seed, 5, MINUTE, &config))
            .collect();
        assert!(schedules.iter().any(|schedule| *schedule != first));
    }

    #[test]
    fn schedule_is_bounded_and_ends_healed() {
        let config = FaultConfig::default();
        for seed in 0..200 {
            let schedule = FaultSchedule::generate(seed, 5, MINUTE, &config);
            let faults = schedule.faults();
            let freezes = faults
                .iter()
                .filter(|f| matches!(f.fault, Fault::Freeze { .. }))
                .count();
            // Each fault adds at most one unfreeze, and the final heal comes on top.
            assert!(faults.len() <= 2 * config.max_faults + 1, "{schedule}");
            assert!(
                faults.len() - freezes <= config.max_faults + 1,
                "{schedule}"
            );
            assert_eq!(
                faults.last().map(|f| &f.fault),
                Some(&Fault::Heal),
                "{schedule}"
            );
            assert!(faults.windows(2).all(|w| w[0].at <= w[1].at), "{schedule}");
            assert!(faults.iter().all(|f| f.at <= MINUTE), "{schedule}");
        }
    }

    #[test]
    fn every_freeze_is_undone() {
        let config = FaultConfig::default();
        for seed in 0..200 {
            let schedule = FaultSchedule::generate(seed, 4, MINUTE, &config);
            let mut frozen = [false; 4];
            for timed in schedule.faults() {
                match timed.fault {
                    Fault::Freeze { node } => {
                        assert!(!frozen[node], "node {node} frozen twice\n{schedule}");
                        frozen[node] = true;
                    }
                    Fault::Unfreeze { node } => frozen[node] = false,
                    // A killed or restarted node is no longer frozen.
                    Fault::Kill { node } | Fault::Restart { node } => frozen[node] = false,
                    _ => {}
                }
            }
            assert_eq!(frozen, [false; 4], "{schedule}");
        }
    }

    #[test]
    fn dead_nodes_stay_within_the_bound() {
        let config = FaultConfig {
            max_faults: 30,
            max_dead: 2,
            ..FaultConfig::default()
        };
        for seed in 0..100 {
            let schedule = FaultSchedule::generate(seed, 5, MINUTE, &config);
            let mut alive = [true; 5];
            for timed in schedule.faults() {
                match timed.fault {
                    Fault::Kill { node } => {
                        assert!(alive[node], "dead node {node} killed\n{schedule}");
                        alive[node] = false;
                    }
                    Fault::Restart { node } => alive[node] = true,
                    _ => {}
                }
                let dead = alive.iter().filter(|alive| !**alive).count();
                assert!(dead <= 2, "{dead} dead nodes\n{schedule}");
            }
        }
    }

    #[test]
    fn disabled_kinds_never_appear() {
        let config = FaultConfig {
            max_faults: 20,
            kills: false,
            restarts: false,
            freezes: false,
            ..FaultConfig::default()
        };
        for seed in 0..100 {
            let schedule = FaultSchedule::generate(seed, 3, MINUTE, &config);
            let lifecycle = schedule.faults().iter().any(|f| {
                matches!(
                    f.fault,
                    Fault::Kill { .. } | Fault::Restart { .. } | Fault::Freeze { .. }
                )
            });
            assert!(!lifecycle, "{schedule}");
        }
    }

    #[test]
    fn partition_sides_cover_all_nodes() {
        let config = FaultConfig {
            max_faults: 20,
            ..FaultConfig::default()
        };
        for seed in 0..50 {
            let schedule = FaultSchedule::generate(seed, 6, MINUTE, &config);
            for timed in schedule.faults() {
                if let Fault::Partition { side_a, side_b } = &timed.fault {
                    assert!(!side_a.is_empty(), "{schedule}");
                    assert!(!side_b.is_empty(), "{schedule}");
                    let mut all: Vec<usize> = side_a.iter().chain(side_b).copied().collect();
                    all.sort_unstable();
                    assert_eq!(all, (0..6).collect::<Vec<_>>(), "{schedule}");
                }
            }
        }
    }
}

//! Routers: one actor ref in front of many routees.
//!
//! A pool router starts its routees as children from one [`Props`]; a routee that stops is
//! removed, and the router stops when none is left. A group router routes to actors started
//! elsewhere: a fixed list, or whatever the receptionist lists under a service key.
//!
//! Routing logics: [`RoutingLogic::RoundRobin`], [`RoutingLogic::Random`], and consistent
//! hashing, where messages with the same key go to the same routee while the routee set does
//! not change, and a change moves only the keys of the routees that came or went.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use rand::Rng;

use crate::actor::{Actor, Props};
use crate::actor_ref::{ActorRef, AnyActorRef};
use crate::context::Context;
use crate::dead_letters::DeadLetterReason;
use crate::error::ActorResult;
use crate::receptionist::{Listing, ServiceKey};

/// Points on the hash ring per routee; more points spread keys more evenly.
const VIRTUAL_NODES_PER_ROUTEE: usize = 32;

/// How a router picks the routee for a message.
pub enum RoutingLogic<M> {
    /// Each routee in turn.
    RoundRobin,
    /// A routee chosen at random.
    Random,
    /// The routee owning the message key's position on a hash ring.
    ConsistentHashing(Arc<dyn Fn(&M) -> u64 + Send + Sync>),
}

impl<M> RoutingLogic<M> {
    /// Consistent hashing on the key that `key` extracts from each message.
    ///
    /// The key is hashed with 64-bit FNV-1a, which does not change between runs or builds.
    pub fn consistent_hashing<K: Hash>(key: impl Fn(&M) -> K + Send + Sync + 'static) -> Self {
        RoutingLogic::ConsistentHashing(Arc::new(move |msg| stable_hash(&key(msg))))
    }
}

impl<M> Clone for RoutingLogic<M> {
    fn clone(&self) -> Self {
        match self {
            RoutingLogic::RoundRobin => RoutingLogic::RoundRobin,
            RoutingLogic::Random => RoutingLogic::Random,
            RoutingLogic::ConsistentHashing(key) => {
                RoutingLogic::ConsistentHashing(Arc::clone(key))
            }
        }
    }
}

impl<M> fmt::Debug for RoutingLogic<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutingLogic::RoundRobin => f.write_str("RoundRobin"),
            RoutingLogic::Random => f.write_str("Random"),
            RoutingLogic::ConsistentHashing(_) => f.write_str("ConsistentHashing"),
        }
    }
}

/// Hashes `value` with 64-bit FNV-1a.
pub fn stable_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = Fnv1a(0xcbf2_9ce4_8422_2325);
    value.hash(&mut hasher);
    hasher.finish()
}

struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Routee selection shared by pool and group routers.
struct Routing<M> {
    logic: RoutingLogic<M>,
    routees: Vec<ActorRef<M>>,
    next: usize,
    /// Sorted (position, routee index) pairs, rebuilt when the routees change.
    ring: Vec<(u64, usize)>,
}

impl<M: Send + 'static> Routing<M> {
    fn new(logic: RoutingLogic<M>) -> Self {
        Self {
            logic,
            routees: Vec::new(),
            next: 0,
            ring: Vec::new(),
        }
    }

    fn set_routees(&mut self, routees: Vec<ActorRef<M>>) {
        self.routees = routees;
        self.ring.clear();
        if matches!(self.logic, RoutingLogic::ConsistentHashing(_)) {
            for (index, routee) in self.routees.iter().enumerate() {
                let path = routee.path();
                for point in 0..VIRTUAL_NODES_PER_ROUTEE {
                    self.ring
                        .push((stable_hash(&(path.as_str(), point)), index));
                }
            }
            self.ring.sort_unstable();
        }
    }

    /// Sends `msg` to the chosen routee; with no routees, counts it as a dead letter.
    fn route<A: Actor<Msg = M>>(&mut self, msg: M, ctx: &Context<A>) {
        if self.routees.is_empty() {
            ctx.dead_letter(DeadLetterReason::NoRoutee);
            return;
        }
        let index = match &self.logic {
            RoutingLogic::RoundRobin => {
                let index = self.next % self.routees.len();
                self.next = self.next.wrapping_add(1);
                index
            }
            RoutingLogic::Random => rand::rng().random_range(0..self.routees.len()),
            RoutingLogic::ConsistentHashing(key) => {
                let position = key(&msg);
                let slot = self.ring.partition_point(|(p, _)| *p < position);
                self.ring[slot % self.ring.len()].1
            }
        };
        self.routees[index].tell(msg);
    }
}

/// A router that starts `size` routees from one `Props` as its children.
pub struct PoolRouter<A: Actor> {
    props: Props<A>,
    size: usize,
    routing: Routing<A::Msg>,
}

impl<A: Actor> PoolRouter<A> {
    /// Props of a pool router with `size` routees started from `props`.
    pub fn props(size: usize, props: Props<A>, logic: RoutingLogic<A::Msg>) -> Props<Self> {
        Props::new(move || PoolRouter {
            props: props.clone(),
            size,
            routing: Routing::new(logic.clone()),
        })
    }
}

impl<A: Actor> Actor for PoolRouter<A> {
    type Msg = A::Msg;

    async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
        let mut routees = Vec::with_capacity(self.size);
        for index in 0..self.size {
            let routee = ctx.spawn(&format!("routee-{index}"), self.props.clone())?;
            ctx.watch(&routee);
            routees.push(routee);
        }
        self.routing.set_routees(routees);
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: A::Msg) -> ActorResult {
        self.routing.route(msg, ctx);
        Ok(())
    }

    async fn terminated(&mut self, ctx: &mut Context<Self>, actor: AnyActorRef) -> ActorResult {
        self.remove(ctx, &actor);
        Ok(())
    }

    async fn child_failed(
        &mut self,
        ctx: &mut Context<Self>,
        child: AnyActorRef,
        _error: crate::ActorError,
    ) -> ActorResult {
        // The routee's own strategy already decided to stop it; the pool carries on.
        self.remove(ctx, &child);
        Ok(())
    }
}

impl<A: Actor> PoolRouter<A> {
    fn remove(&mut self, ctx: &mut Context<Self>, actor: &AnyActorRef) {
        let routees: Vec<_> = self
            .routing
            .routees
            .iter()
            .filter(|r| r.id() != actor.id())
            .cloned()
            .collect();
        self.routing.set_routees(routees);
        if self.routing.routees.is_empty() {
            ctx.stop_self();
        }
    }
}

/// A router over actors started elsewhere.
pub struct GroupRouter<M: Send + 'static> {
    routing: Routing<M>,
    source: GroupSource<M>,
}

enum GroupSource<M: Send + 'static> {
    Fixed,
    Key {
        key: ServiceKey<M>,
        latest: Arc<Mutex<Option<Vec<ActorRef<M>>>>>,
        subscriber: Option<ActorRef<Listing<M>>>,
    },
}

impl<M: Send + 'static> GroupRouter<M> {
    /// Props of a router over a fixed list of routees.
    pub fn props(routees: Vec<ActorRef<M>>, logic: RoutingLogic<M>) -> Props<Self> {
        Props::new(move || {
            let mut routing = Routing::new(logic.clone());
            routing.set_routees(routees.clone());
            GroupRouter {
                routing,
                source: GroupSource::Fixed,
            }
        })
    }

    /// Props of a router over the actors the receptionist lists under `key`.
    ///
    /// The routee set follows registrations; a message that arrives while none is listed
    /// is dropped and logged at `debug`.
    pub fn props_for_key(key: ServiceKey<M>, logic: RoutingLogic<M>) -> Props<Self> {
        Props::new(move || GroupRouter {
            routing: Routing::new(logic.clone()),
            source: GroupSource::Key {
                key: key.clone(),
                latest: Arc::default(),
                subscriber: None,
            },
        })
    }

    fn refresh(&mut self) {
        if let GroupSource::Key { latest, .. } = &self.source {
            let update = latest
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(routees) = update {
                self.routing.set_routees(routees);
            }
        }
    }
}

impl<M: Send + 'static> Actor for GroupRouter<M> {
    type Msg = M;

    async fn started(&mut self, ctx: &mut Context<Self>) -> ActorResult {
        if let GroupSource::Key {
            key,
            latest,
            subscriber: registered,
        } = &mut self.source
        {
            let latest = Arc::clone(latest);
            let subscriber = ActorRef::<Listing<M>>::from_fn(
                &ctx.system(),
                &format!("{}/$listing", ctx.id()),
                move |listing| {
                    *latest
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(listing.services);
                },
            );
            ctx.system().receptionist().subscribe(key, &subscriber);
            *registered = Some(subscriber);
        }
        Ok(())
    }

    async fn stopped(&mut self, ctx: &mut Context<Self>) {
        if let GroupSource::Key {
            key,
            subscriber: Some(subscriber),
            ..
        } = &self.source
        {
            ctx.system().receptionist().unsubscribe(key, subscriber);
        }
    }

    async fn handle(&mut self, ctx: &mut Context<Self>, msg: M) -> ActorResult {
        self.refresh();
        self.routing.route(msg, ctx);
        Ok(())
    }
}

//! Which configuration serves a request, across a plugin's configuration updates, stalls and
//! clock steps.
//!
//! Envoy gives each plugin configuration a root context; several live in one VM at once (two
//! listeners, inbound and outbound, an old listener draining after an update) and Envoy reuses a
//! still-alive one without a new `proxy_on_configure` when its configuration comes back (a revert
//! while the old listener drains). So "the newest configuration of a plugin name" is not the one
//! serving a request: Envoy says which root a request belongs to when the request's context is
//! created, and that is what counts it. A request is never counted by a plugin of another name.
//!
//! A configuration that fails validation is never refused to Envoy (a refused ECDS update leaves a
//! new pod answering 500 to everything): its root serves with the plugin's last good
//! configuration in this VM, or records nothing if there is none.
//!
//! Envoy tells a module that a root ended only through `proxy_on_done`/`proxy_on_delete`, which it
//! would then also call for every request (two more VM entries each). Roots tick instead, and one
//! that missed [`STALE_ROUNDS`] rounds of the others' ticks has ended. Rounds, not a clock: a
//! process stall (SIGSTOP, a throttled node) or a clock step moves every clock at once, but the
//! roots' ticks resume together, so no live root looks silent after one. A root dropped anyway
//! becomes dormant: its configuration is kept, and a tick or a request under it brings it back.
//!
//! Envoy never forgets a root's timer: a retired root whose timer runs is re-armed by Envoy for
//! the VM's life (the call dropped, its context gone), and under churn those timers add up (the
//! churn soak: 600 retired roots at 30 s cost Envoy as much idle CPU again as the whole proxy).
//! So a root superseded by a newer root of its name is stopped ([`Pace::Stopped`]) while it is
//! still alive to be stopped: Envoy deletes it once its last stream ends, and its timer dies with
//! it. A request under it (a revert Envoy served from its cache) starts it again.
//!
//! Whether a stopped root still exists, the ticking roots ask the host at each tick: it refuses to
//! make a context that no longer exists effective. A deleted root is forgotten outright
//! ([`Plugins::deleted`]), its compiled configuration with it: nothing can come under it again
//! (Envoy never reuses a context id), so a VM under configuration churn keeps no per-change state
//! and its ticks cost what one configuration's do. A stopped root still alive [`HOLD_ROUNDS`]
//! later is one held for minutes (a listener draining, a long stream): Envoy may serve it again
//! after a revert, so it becomes a backup ([`Pace::Backup`], a tick every [`SLOW_TICK_MS`]) that
//! serves again when no faster root of its name ticks any more, requests or not. Only such roots,
//! if deleted later, leave a timer behind, at 30 s.

use std::collections::VecDeque;

/// Every live root ticks this often: samplers run on it, and it says the root is alive.
pub const TICK_MS: u32 = 1000;

/// A root superseded by a newer root of its name ticks this often (see the module comment).
pub const SLOW_TICK_MS: u32 = 30_000;

/// A full-rate root silent this many rounds is asked about (see [`Plugins::to_ask`]).
pub const SILENT_ROUNDS: u64 = 3;

/// A stopped root still alive this many rounds after it was superseded becomes a backup.
pub const HOLD_ROUNDS: u64 = 60;

/// How often a live root's timer fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Every [`TICK_MS`]: the newest root of its name, or one serving again.
    Full,
    /// Not at all: superseded in round `since`, and soon deleted by Envoy, most likely.
    Stopped { since: u64 },
    /// Every [`SLOW_TICK_MS`]: superseded, and alive [`HOLD_ROUNDS`] later.
    Backup,
}

/// A root that missed this many rounds has ended (a round ends when some root ticks a second
/// time in it: about a second). Long, so a busy worker never makes a live root look dead.
pub const STALE_ROUNDS: u64 = 60;

/// Dormant roots kept per VM (their delivered configuration each), oldest forgotten first.
pub const MAX_DORMANT: usize = 64;

/// Requests in flight remembered per VM (a slot per context id modulo this). A request whose slot
/// was reused meanwhile (more in flight, or a stream open for this many newer requests) falls back
/// to the newest configuration of its plugin name.
pub const IN_FLIGHT: usize = 4096;

/// One live root context.
pub struct Live<R> {
    pub id: u32,
    /// The plugin's name as Envoy gives it (`plugin_name`).
    pub name: Vec<u8>,
    /// Whether the configuration delivered to this root passed validation.
    pub valid: bool,
    /// The configuration it serves (the delivered one, or the last good one when that was
    /// refused): what it is rebuilt from if it is dropped and comes back.
    in_force: Option<Vec<u8>>,
    /// The round of its last tick (or of its configuration).
    heard: u64,
    pace: Pace,
    /// The round the host last said it exists (see [`Plugins::to_ask`]).
    asked: u64,
    order: u64,
    pub root: R,
}

/// A root dropped as ended, kept so that it can come back if it was not.
struct Dormant {
    id: u32,
    name: Vec<u8>,
    valid: bool,
    in_force: Option<Vec<u8>>,
    order: u64,
}

/// A superseded root serves again (a revert Envoy served from its cache, or the root that
/// superseded it ended): its timer goes back to [`TICK_MS`], and its validity is the plugin's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    pub name: Vec<u8>,
    pub valid: bool,
}

/// What a tick changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ticked {
    /// The ticking root, if it was superseded and serves again.
    pub resumed: Option<Resumed>,
    /// Plugin names that lost a root, whose configuration in force may have changed.
    pub ended: Vec<Vec<u8>>,
}

pub struct Plugins<R> {
    roots: Vec<Live<R>>,
    dormant: VecDeque<Dormant>,
    /// The last configuration that passed validation, per plugin name.
    last_good: Vec<(Vec<u8>, Vec<u8>)>,
    /// `(context id, root id)`, at `context id % IN_FLIGHT`; context ids start at 1, so 0 is empty.
    in_flight: Vec<(u32, u32)>,
    configured: u64,
    round: u64,
}

impl<R> Default for Plugins<R> {
    fn default() -> Self {
        Plugins {
            roots: Vec::new(),
            dormant: VecDeque::new(),
            last_good: Vec::new(),
            in_flight: Vec::new(),
            configured: 0,
            round: 0,
        }
    }
}

impl<R> Plugins<R> {
    /// The configuration root `id` of plugin `name` serves when `raw` was delivered: `raw` if
    /// `valid`, else the plugin's last good one in this VM (if any).
    pub fn in_force<'a>(&'a self, name: &[u8], raw: &'a [u8], valid: bool) -> Option<&'a [u8]> {
        if valid {
            Some(raw)
        } else {
            self.last_good(name)
        }
    }

    /// Root `id` of plugin `name` was given `raw`; `valid` says whether it passed validation.
    /// Returns the other live roots of `name`, now superseded: to stop ([`Pace::Stopped`]).
    pub fn configured(
        &mut self,
        id: u32,
        name: &[u8],
        raw: &[u8],
        valid: bool,
        root: R,
    ) -> Vec<u32> {
        let in_force = self.in_force(name, raw, valid).map(<[u8]>::to_vec);
        self.roots.retain(|l| l.id != id);
        self.dormant.retain(|d| d.id != id);
        if valid {
            match self.last_good.iter_mut().find(|(n, _)| n == name) {
                Some((_, good)) => *good = raw.to_vec(),
                None => self.last_good.push((name.to_vec(), raw.to_vec())),
            }
        }
        self.configured += 1;
        let mut superseded = Vec::new();
        let round = self.round;
        for other in self
            .roots
            .iter_mut()
            .filter(|l| l.name == name && l.pace == Pace::Full)
        {
            other.pace = Pace::Stopped { since: round };
            superseded.push(other.id);
        }
        self.roots.push(Live {
            id,
            name: name.to_vec(),
            valid,
            in_force,
            heard: self.round,
            pace: Pace::Full,
            asked: 0,
            order: self.configured,
            root,
        });
        superseded
    }

    /// The roots alive in this VM of plugins other than `name`.
    pub fn others<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a Live<R>> {
        self.roots.iter().filter(move |l| l.name != name)
    }

    /// The last configuration of plugin `name` that passed validation in this VM.
    pub fn last_good(&self, name: &[u8]) -> Option<&[u8]> {
        self.last_good
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, raw)| raw.as_slice())
    }

    pub fn root(&mut self, id: u32) -> Option<&mut Live<R>> {
        self.roots.iter_mut().find(|l| l.id == id)
    }

    /// A request's context `context` was created under root `root`. `Some` when that root had
    /// been superseded: it serves again, and is its plugin's configuration in force.
    pub fn request_started(&mut self, context: u32, root: u32) -> Option<Resumed> {
        if self.in_flight.is_empty() {
            self.in_flight = vec![(0, 0); IN_FLIGHT];
        }
        if let Some(slot) = self.in_flight.get_mut(slot_of(context)) {
            *slot = (context, root);
        }
        let at = self
            .roots
            .iter()
            .position(|l| l.id == root && l.pace != Pace::Full)?;
        self.resume(at)
    }

    /// Superseded root at `at` serves again: full rate, and the newest of its name.
    fn resume(&mut self, at: usize) -> Option<Resumed> {
        self.configured += 1;
        let order = self.configured;
        let live = self.roots.get_mut(at)?;
        live.pace = Pace::Full;
        live.order = order;
        Some(Resumed {
            name: live.name.clone(),
            valid: live.valid,
        })
    }

    /// The root that serves request `context`, forgetting the request. Without a record of it
    /// (see [`IN_FLIGHT`]), the newest root of the request's plugin name, which `name` gives (a
    /// host call, made only when the answer is not obvious). A dormant root is brought back by
    /// `revive` (given the configuration it served).
    pub fn root_of_request(
        &mut self,
        context: u32,
        name: impl FnOnce() -> Option<Vec<u8>>,
        revive: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Option<&mut Live<R>> {
        self.serving(context, true, name, revive)
    }

    /// [`Plugins::root_of_request`] while the request goes on (its headers, its body): the
    /// record stays for the end.
    pub fn root_of_live_request(
        &mut self,
        context: u32,
        name: impl FnOnce() -> Option<Vec<u8>>,
        revive: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Option<&mut Live<R>> {
        self.serving(context, false, name, revive)
    }

    fn serving(
        &mut self,
        context: u32,
        forget: bool,
        name: impl FnOnce() -> Option<Vec<u8>>,
        revive: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Option<&mut Live<R>> {
        // Only this request's own record is taken: a newer request in the slot keeps its own.
        let recorded = self.in_flight.get_mut(slot_of(context)).and_then(|slot| {
            let (c, root) = *slot;
            let mine = c == context && c != 0;
            if mine && forget {
                *slot = (0, 0);
            }
            mine.then_some(root)
        });
        if let Some(id) = recorded {
            if let Some(at) = self.roots.iter().position(|l| l.id == id) {
                return self.roots.get_mut(at);
            }
            if self.dormant.iter().any(|d| d.id == id) {
                return self.revive(id, revive);
            }
        }
        // No record of it (or of its root): the newest root of its name, never another plugin's.
        if recorded.is_none() && self.roots.len() == 1 && self.dormant.is_empty() {
            return self.roots.first_mut();
        }
        let name = name()?;
        let live = self
            .roots
            .iter()
            .enumerate()
            .filter(|(_, l)| l.name == name)
            .max_by_key(|(_, l)| l.order)
            .map(|(at, _)| at);
        if let Some(at) = live {
            return self.roots.get_mut(at);
        }
        let dormant = self
            .dormant
            .iter()
            .filter(|d| d.name == name)
            .max_by_key(|d| d.order)
            .map(|d| d.id)?;
        self.revive(dormant, revive)
    }

    /// Brings dormant root `id` back (it ticked, or a request came under it).
    pub fn revive(
        &mut self,
        id: u32,
        revive: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Option<&mut Live<R>> {
        let at = self.dormant.iter().position(|d| d.id == id)?;
        let d = self.dormant.remove(at)?;
        let root = revive(d.in_force.as_deref());
        self.roots.push(Live {
            id: d.id,
            name: d.name,
            valid: d.valid,
            in_force: d.in_force,
            heard: self.round,
            pace: Pace::Full,
            asked: 0,
            order: d.order,
            root,
        });
        self.roots.last_mut()
    }

    /// The live roots superseded: those Envoy may have deleted since.
    pub fn superseded(&self) -> Vec<u32> {
        self.roots
            .iter()
            .filter(|l| l.pace != Pace::Full)
            .map(|l| l.id)
            .collect()
    }

    /// The roots a tick of root `ticking` asks the host about: the stopped ones (they never
    /// tick), backups neither heard from nor said to exist for a slow period (a live one ticks
    /// once in it), and full-rate roots silent for [`SILENT_ROUNDS`] (a plugin removed: its
    /// configuration in force, and its gauge, change at once rather than after
    /// [`STALE_ROUNDS`]).
    pub fn to_ask(&self, ticking: u32) -> Vec<u32> {
        let period = u64::from(SLOW_TICK_MS / TICK_MS);
        self.roots
            .iter()
            .filter(|l| {
                let silent = self.round.saturating_sub(l.heard.max(l.asked));
                l.id != ticking
                    && match l.pace {
                        Pace::Full => silent > SILENT_ROUNDS,
                        Pace::Stopped { .. } => true,
                        Pace::Backup => silent > period,
                    }
            })
            .map(|l| l.id)
            .collect()
    }

    /// The host says root `id` exists. `true` when it was stopped [`HOLD_ROUNDS`] ago: it is a
    /// backup from now, and its timer is to be set to [`SLOW_TICK_MS`].
    pub fn exists(&mut self, id: u32) -> bool {
        let round = self.round;
        let Some(live) = self.root(id) else {
            return false;
        };
        live.asked = round;
        match live.pace {
            Pace::Stopped { since } if round.saturating_sub(since) > HOLD_ROUNDS => {
                live.pace = Pace::Backup;
                true
            }
            _ => false,
        }
    }

    /// Root `id` no longer exists in the host: forgotten, not dormant (it cannot come back).
    /// Returns its plugin's name, whose configuration in force may have changed.
    pub fn deleted(&mut self, id: u32) -> Option<Vec<u8>> {
        let at = self.roots.iter().position(|l| l.id == id)?;
        let name = self.roots.swap_remove(at).name;
        self.prune_last_good();
        Some(name)
    }

    /// Whether root `id` is dormant (dropped as ended, and kept).
    pub fn is_dormant(&self, id: u32) -> bool {
        self.dormant.iter().any(|d| d.id == id)
    }

    /// Root `id` ticked: it is alive. Roots that missed [`STALE_ROUNDS`] rounds (three slow
    /// periods for a backup) become dormant; stopped ones never tick, the host is asked instead.
    pub fn ticked(&mut self, id: u32) -> Ticked {
        let mut result = Ticked::default();
        let Some(at) = self.roots.iter().position(|l| l.id == id) else {
            return result;
        };
        let Some((previous, pace, name)) = self
            .roots
            .get(at)
            .map(|l| (l.heard, l.pace, l.name.clone()))
        else {
            return result;
        };
        // A second tick in this round starts the next one.
        if previous == self.round {
            self.round += 1;
        }
        let now = self.round;
        // A backup that no faster root of its name replaced since its last tick serves again
        // (the one that superseded it ended). Not a just-stopped root's last armed tick: the
        // root that stopped it may not have ticked yet.
        let replaced = self
            .roots
            .iter()
            .any(|l| l.name == name && l.pace == Pace::Full && l.id != id && l.heard > previous);
        if pace == Pace::Backup && !replaced {
            result.resumed = self.resume(at);
        }
        if let Some(live) = self.roots.get_mut(at) {
            live.heard = now;
        }
        let slow_rounds = u64::from(SLOW_TICK_MS / TICK_MS) * 3;
        let mut i = 0;
        while i < self.roots.len() {
            let stale = self.roots.get(i).is_some_and(|l| {
                let limit = match l.pace {
                    Pace::Full => STALE_ROUNDS,
                    Pace::Backup => slow_rounds.max(STALE_ROUNDS),
                    Pace::Stopped { .. } => u64::MAX,
                };
                // The host saying it exists is as good as a tick (not for `replaced` above).
                now.saturating_sub(l.heard.max(l.asked)) > limit
            });
            if !stale {
                i += 1;
                continue;
            }
            let l = self.roots.swap_remove(i);
            if !result.ended.contains(&l.name) {
                result.ended.push(l.name.clone());
            }
            if self.dormant.len() >= MAX_DORMANT {
                self.dormant.pop_front();
            }
            self.dormant.push_back(Dormant {
                id: l.id,
                name: l.name,
                valid: l.valid,
                in_force: l.in_force,
                order: l.order,
            });
        }
        if !result.ended.is_empty() {
            self.prune_last_good();
        }
        result
    }

    /// Forgets the last good configuration of plugins with no root left, live or dormant.
    fn prune_last_good(&mut self) {
        let (roots, dormant) = (&self.roots, &self.dormant);
        self.last_good.retain(|(name, _)| {
            roots.iter().any(|l| &l.name == name) || dormant.iter().any(|d| &d.name == name)
        });
    }

    /// Whether the newest live configuration of plugin `name` passed validation; `None` when the
    /// plugin has no live root in this VM.
    pub fn in_force_valid(&self, name: &[u8]) -> Option<bool> {
        self.roots
            .iter()
            .filter(|l| l.name == name)
            .max_by_key(|l| l.order)
            .map(|l| l.valid)
    }

    /// Live roots.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Dormant roots.
    pub fn dormant(&self) -> usize {
        self.dormant.len()
    }

    /// Plugin names whose last good configuration is kept.
    pub fn last_good_kept(&self) -> usize {
        self.last_good.len()
    }
}

fn slot_of(context: u32) -> usize {
    usize::try_from(context).unwrap_or(0) % IN_FLIGHT
}

#[cfg(test)]
#[path = "../tests/unit/lifecycle.rs"]
mod tests;

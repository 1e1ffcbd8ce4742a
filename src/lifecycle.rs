//! Which configuration serves a request, across a plugin's configuration updates.
//!
//! Envoy gives each plugin configuration a root context; several live in one VM at once (two
//! listeners, inbound and outbound, an old listener draining after an update) and Envoy reuses a
//! still-alive one without a new `proxy_on_configure` when its configuration comes back (a revert
//! while the old listener drains). So "the newest configuration of a plugin name" is not the one
//! serving a request: Envoy says which root a request belongs to when the request's context is
//! created, and that is what counts it.
//!
//! A configuration that fails validation is never refused to Envoy (a refused ECDS update leaves a
//! new pod answering 500 to everything): its root serves with the plugin's last good
//! configuration in this VM, or records nothing if there is none.
//!
//! Envoy tells a module that a root ended only through `proxy_on_done`/`proxy_on_delete`, which it
//! would then also call for every request (two more VM entries each). Roots tick once a second
//! instead, and one silent for [`STALE_MS`] has ended.

/// A root not heard from for this long has ended (it ticks every second while alive). Long, so a
/// stalled event loop never makes a live root look dead; freeing a root is tidiness, not urgency.
pub const STALE_MS: u64 = 60_000;

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
    seen_ms: u64,
    order: u64,
    pub root: R,
}

pub struct Plugins<R> {
    roots: Vec<Live<R>>,
    /// The last configuration that passed validation, per plugin name.
    last_good: Vec<(Vec<u8>, Vec<u8>)>,
    /// `(context id, root id)`, at `context id % IN_FLIGHT`; context ids start at 1, so 0 is empty.
    in_flight: Vec<(u32, u32)>,
    configured: u64,
}

impl<R> Default for Plugins<R> {
    fn default() -> Self {
        Plugins {
            roots: Vec::new(),
            last_good: Vec::new(),
            in_flight: Vec::new(),
            configured: 0,
        }
    }
}

impl<R> Plugins<R> {
    /// Root `id` of plugin `name` was given `raw`; `valid` says whether it passed validation.
    pub fn configured(
        &mut self,
        id: u32,
        name: &[u8],
        raw: &[u8],
        valid: bool,
        now_ms: u64,
        root: R,
    ) {
        self.roots.retain(|l| l.id != id);
        if valid {
            match self.last_good.iter_mut().find(|(n, _)| n == name) {
                Some((_, good)) => *good = raw.to_vec(),
                None => self.last_good.push((name.to_vec(), raw.to_vec())),
            }
        }
        self.configured += 1;
        self.roots.push(Live {
            id,
            name: name.to_vec(),
            valid,
            seen_ms: now_ms,
            order: self.configured,
            root,
        });
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

    /// A request's context `context` was created under root `root`.
    pub fn request_started(&mut self, context: u32, root: u32) {
        if self.in_flight.is_empty() {
            self.in_flight = vec![(0, 0); IN_FLIGHT];
        }
        if let Some(slot) = self.in_flight.get_mut(slot_of(context)) {
            *slot = (context, root);
        }
    }

    /// The root that serves request `context`, forgetting the request. Without a record of it
    /// (see [`IN_FLIGHT`]), the newest root of the request's plugin name, which `name` gives (a
    /// host call, made only when several roots are alive).
    pub fn root_of_request(
        &mut self,
        context: u32,
        name: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<&mut Live<R>> {
        self.serving(context, true, name)
    }

    /// [`Plugins::root_of_request`] while the request goes on (its headers, its body): the
    /// record stays for the end.
    pub fn root_of_live_request(
        &mut self,
        context: u32,
        name: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<&mut Live<R>> {
        self.serving(context, false, name)
    }

    fn serving(
        &mut self,
        context: u32,
        forget: bool,
        name: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<&mut Live<R>> {
        let recorded = self.in_flight.get_mut(slot_of(context)).and_then(|slot| {
            let (c, root) = if forget { std::mem::take(slot) } else { *slot };
            (c == context && c != 0).then_some(root)
        });
        let at = match recorded.and_then(|id| self.roots.iter().position(|l| l.id == id)) {
            Some(at) => at,
            None if self.roots.len() <= 1 => 0,
            None => {
                let name = name();
                let newest = |named: bool| {
                    self.roots
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| !named || Some(&l.name) == name.as_ref())
                        .max_by_key(|(_, l)| l.order)
                        .map(|(at, _)| at)
                };
                newest(true).or_else(|| newest(false))?
            }
        };
        self.roots.get_mut(at)
    }

    /// Root `id` ticked at `now_ms`: it is alive. Roots silent for [`STALE_MS`] are dropped;
    /// returns the plugin names that lost a root, whose configuration in force may have changed.
    pub fn ticked(&mut self, id: u32, now_ms: u64) -> Vec<Vec<u8>> {
        if let Some(live) = self.root(id) {
            live.seen_ms = live.seen_ms.max(now_ms);
        }
        let mut ended = Vec::new();
        self.roots.retain(|l| {
            let alive = l.seen_ms.saturating_add(STALE_MS) >= now_ms;
            if !alive && !ended.contains(&l.name) {
                ended.push(l.name.clone());
            }
            alive
        });
        ended
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

    pub fn len(&self) -> usize {
        self.roots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

fn slot_of(context: u32) -> usize {
    usize::try_from(context).unwrap_or(0) % IN_FLIGHT
}

#[cfg(test)]
#[path = "../tests/unit/lifecycle.rs"]
mod tests;

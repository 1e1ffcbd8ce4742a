//! The bodies being read in one VM (body-reading build): a table by request context, within a
//! memory budget. What arrives counts, never what a client declares; one connection (one client)
//! holds a bounded share; readings that stopped progressing give up their room first. The
//! reading of each body and its verdicts are `body.rs`.

use crate::body::{NotCounted, Pending, Reading};
use crate::labels::Side;
use crate::rules::Rules;
use std::collections::HashMap;

/// The bodies being read in one VM, by request context, within a memory budget.
#[derive(Debug, Default)]
pub struct Bodies {
    pending: HashMap<u32, Pending>,
    /// Bytes the copies in `pending` hold.
    held: usize,
    /// Requests refused an entry (the table was full), newest last, at most [`MAX_REFUSED`]:
    /// their end says `busy` rather than `no_body`.
    refused: std::collections::VecDeque<u32>,
    /// Chunks seen: the clock progress is measured by (no host call per chunk).
    chunks: u64,
}

/// Refused requests remembered until their end; past it the oldest end says `no_body`.
pub const MAX_REFUSED: usize = 1024;

/// Requests whose bodies one VM reads at once; past it a body is not read (`busy`).
pub const MAX_PENDING: usize = 4096;
/// Memory one VM gives body copies at once (the VM's memory never shrinks after a peak).
pub const BUDGET_BYTES: usize = 16 * 1024 * 1024;
/// A request still pending after this long is forgotten (its end was never seen).
pub const FORGET_MS: u64 = 10 * 60 * 1000;
/// What the bodies of one connection's requests may hold at once, beyond one body at its limit:
/// a client (an HTTP/2 connection carries many requests) cannot take the whole budget.
pub const PER_CONNECTION_BYTES: usize = BUDGET_BYTES / 8;
/// A reading with no chunk while this many chunks of other requests passed has stopped
/// progressing: it is the first to go when the budget is full (`busy`).
pub const STALLED_CHUNKS: u64 = 64;

/// A chunk of `size` bytes of `side`'s body of request `context`; `end` when it is the last.
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    pub context: u32,
    pub side: Side,
    pub size: usize,
    pub end: bool,
}

impl Bodies {
    /// A chunk of a body passes: the reading its headers started copies what it wants of it
    /// (`fetch` gives the chunk's first `n` bytes, `None` if the host would not), and at the
    /// body's end evaluates the copy. A request without an entry is not read.
    pub fn chunk(
        &mut self,
        chunk: Chunk,
        all: &Rules,
        fetch: impl FnOnce(usize) -> Option<Vec<u8>>,
    ) {
        let Chunk {
            context,
            side,
            size,
            end,
        } = chunk;
        self.chunks = self.chunks.wrapping_add(1);
        let room = self.room(context, side, size);
        let Some(pending) = self.pending.get_mut(&context) else {
            return;
        };
        pending.progress = self.chunks;
        let reading = pending.side(side);
        let before = reading.held();
        let wanted = reading.wanted(size);
        if wanted > 0 {
            // Checked before copying: past the budget the body is not read at all.
            if !room {
                reading.refuse(NotCounted::Busy);
            } else {
                match fetch(wanted) {
                    Some(bytes) => reading.push(&bytes),
                    None => reading.refuse(NotCounted::Busy),
                }
            }
        }
        if end {
            reading.end(all, side);
        }
        self.held = self
            .held
            .saturating_sub(before)
            .saturating_add(reading.held());
    }

    /// Whether request `context`'s `side` may grow by a chunk of `size`: within what its
    /// connection may hold, and within the budget once readings that stopped progressing have
    /// been given up (`busy`) to make room.
    fn room(&mut self, context: u32, side: Side, size: usize) -> bool {
        let Some(pending) = self.pending.get_mut(&context) else {
            return false;
        };
        let connection = pending.connection;
        let reading = pending.side(side);
        let before = reading.held();
        let after = reading.holding(reading.wanted(size));
        let limit = reading.limit();
        if after <= before {
            return true;
        }
        if connection.is_some() {
            let on_connection: usize = self
                .pending
                .iter()
                .filter(|(c, p)| **c != context && p.connection == connection)
                .map(|(_, p)| p.held())
                .sum();
            let bound = PER_CONNECTION_BYTES.max(limit.saturating_add(1));
            if on_connection.saturating_add(after) > bound {
                return false;
            }
        }
        let others = self.held.saturating_sub(before);
        if others.saturating_add(after) <= BUDGET_BYTES {
            return true;
        }
        // The stalled ones go, oldest progress first, while that makes room.
        let now = self.chunks;
        let mut stalled: Vec<(u64, u32)> = self
            .pending
            .iter()
            .filter(|(c, p)| {
                **c != context && p.held() > 0 && now.saturating_sub(p.progress) > STALLED_CHUNKS
            })
            .map(|(c, p)| (p.progress, *c))
            .collect();
        stalled.sort_unstable();
        let mut freed = 0usize;
        let mut give_up = Vec::new();
        for (_, c) in stalled {
            if others.saturating_sub(freed).saturating_add(after) <= BUDGET_BYTES {
                break;
            }
            freed = freed.saturating_add(self.pending.get(&c).map_or(0, Pending::held));
            give_up.push(c);
        }
        if others.saturating_sub(freed).saturating_add(after) > BUDGET_BYTES {
            return false;
        }
        for c in give_up {
            if let Some(p) = self.pending.get_mut(&c) {
                let held = p.held();
                p.request.refuse(NotCounted::Busy);
                p.response.refuse(NotCounted::Busy);
                self.held = self.held.saturating_sub(held).saturating_add(p.held());
            }
        }
        true
    }

    /// Request `context` came on connection `connection` (one client).
    pub fn connection(&mut self, context: u32, connection: u64) {
        if let Some(p) = self.pending.get_mut(&context) {
            p.connection = Some(connection);
        }
    }

    /// The request's headers have passed: `request` is how its body is read (`NotStarted` when
    /// it has none), `response_rules` the rules that may read the response body. Only a request
    /// some rule reads gets an entry. Returns `Busy` if the table is full.
    pub fn request_headers(
        &mut self,
        context: u32,
        now_ms: u64,
        request: Reading,
        response_rules: Vec<usize>,
    ) -> Option<NotCounted> {
        if matches!(request, Reading::Skipped | Reading::NotStarted) && response_rules.is_empty() {
            return None;
        }
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&context) {
            self.note_refused(context);
            return Some(NotCounted::Busy);
        }
        let mut request = request;
        if self.held.saturating_add(request.held()) > BUDGET_BYTES {
            request.refuse(NotCounted::Busy);
        }
        let held = request.held();
        let pending = Pending {
            request,
            response: Reading::NotStarted,
            response_rules,
            born_ms: now_ms,
            refused: None,
            connection: None,
            progress: self.chunks,
        };
        if let Some(old) = self.pending.insert(context, pending) {
            self.held = self
                .held
                .saturating_sub(old.request.held() + old.response.held());
        }
        self.held = self.held.saturating_add(held);
        None
    }

    /// The response's headers have passed: `start` decides, from the rules noted at the
    /// request, how its body is read.
    pub fn response_headers(&mut self, context: u32, start: impl FnOnce(&[usize]) -> Reading) {
        if let Some(pending) = self.pending.get_mut(&context) {
            if !pending.response_rules.is_empty() {
                pending.response = start(&pending.response_rules);
                if self.held.saturating_add(pending.response.held()) > BUDGET_BYTES {
                    pending.response.refuse(NotCounted::Busy);
                }
                self.held = self.held.saturating_add(pending.response.held());
            }
        }
    }

    /// Whether request `context` has bodies being read.
    pub fn has(&self, context: u32) -> bool {
        self.pending.contains_key(&context)
    }

    /// The request has ended: its bodies' verdicts, and the entry gone.
    pub fn finish(&mut self, context: u32) -> Option<Pending> {
        let Some(pending) = self.pending.remove(&context) else {
            let at = self.refused.iter().position(|&c| c == context)?;
            self.refused.remove(at);
            return Some(Pending {
                refused: Some(NotCounted::Busy),
                ..Pending::default()
            });
        };
        self.held = self
            .held
            .saturating_sub(pending.request.held() + pending.response.held());
        Some(pending)
    }

    fn note_refused(&mut self, context: u32) {
        if self.refused.len() >= MAX_REFUSED {
            self.refused.pop_front();
        }
        self.refused.push_back(context);
    }

    /// Forgets requests pending longer than [`FORGET_MS`] (whose end Envoy never reported).
    pub fn sweep(&mut self, now_ms: u64) {
        let mut freed = 0;
        self.pending.retain(|_, p| {
            let keep = now_ms.saturating_sub(p.born_ms) < FORGET_MS;
            if !keep {
                freed += p.request.held() + p.response.held();
            }
            keep
        });
        self.held = self.held.saturating_sub(freed);
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no request is being read or remembered as refused.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.refused.is_empty()
    }

    /// Bytes the copies hold now.
    pub fn held(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
#[path = "../tests/unit/bodies.rs"]
mod tests;

//! gRPC streams in flight, as the body-reading module follows them: an RPC counted started at
//! its request headers, its messages counted from the 5-byte prefixes of the data as it passes
//! (never held: only the prefixes are read), and its status when trailers carry it before a
//! later filter (Envoy's `grpc_web`) moves them into the body.

use std::collections::HashMap;

/// A gRPC message's prefix: a flags byte, then the length (4 bytes, big-endian).
pub const PREFIX: usize = 5;
/// The flags bit of a grpc-web trailer frame: its payload is the status, not a message.
const TRAILER_FLAG: u8 = 0x80;
/// The streams one VM follows at most: beyond, an RPC is counted as the lean module counts it.
pub const MAX_STREAMS: usize = 4096;

/// One direction of a stream: where the next prefix starts, and the messages seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frames {
    /// Bytes of the current message (after its prefix) still to pass.
    skip: u64,
    /// The prefix read so far: its first `have` bytes.
    prefix: [u8; PREFIX],
    have: usize,
    pub messages: u64,
    /// A grpc-web trailer frame's status, when its payload came within one chunk.
    pub status: Option<u8>,
}

impl Frames {
    /// Follows a chunk of `size` bytes; `read(offset, len)` gives up to `len` of its bytes from
    /// `offset` (the host's buffer). Only prefixes (and a grpc-web trailer frame's short payload)
    /// are read: one small read per message.
    pub fn feed(&mut self, size: usize, mut read: impl FnMut(usize, usize) -> Vec<u8>) {
        let mut at = 0usize;
        while at < size {
            if self.skip > 0 {
                let step = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(size - at);
                at += step;
                self.skip -= step as u64;
                continue;
            }
            let want = PREFIX - self.have;
            let got = read(at, want.min(size - at));
            if got.is_empty() {
                return; // the host gave nothing: the rest of this chunk is not followed
            }
            for (slot, b) in self.prefix.iter_mut().skip(self.have).zip(&got) {
                *slot = *b;
            }
            self.have += got.len().min(want);
            at += got.len().min(want);
            if self.have < PREFIX {
                continue;
            }
            self.have = 0;
            let [flags, a, b, c, d] = self.prefix;
            let length = u64::from(u32::from_be_bytes([a, b, c, d]));
            if flags & TRAILER_FLAG != 0 {
                let fits = usize::try_from(length).is_ok_and(|n| n <= size - at && n <= 1024);
                if fits {
                    self.status = trailer_status(&read(at, length as usize));
                }
            } else {
                self.messages += 1;
            }
            self.skip = length;
        }
    }
}

/// `grpc-status` in a grpc-web trailer frame's payload (`name:value` lines, CRLF-separated).
fn trailer_status(payload: &[u8]) -> Option<u8> {
    payload.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
        let value = value.get(1..)?.trim_ascii();
        (name.trim_ascii().eq_ignore_ascii_case(b"grpc-status"))
            .then(|| crate::pairs::decimal(value))
            .flatten()
            .and_then(|n| u8::try_from(n).ok())
    })
}

/// What the body-reading module learnt of one RPC before it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stream {
    /// Its index in the configured methods (`grpc::Methods`).
    pub rpc: usize,
    pub received: Frames,
    pub sent: Frames,
    /// `grpc-status` of the response trailers, read when they passed.
    pub status: Option<Vec<u8>>,
}

impl Stream {
    /// The status the stream ended with, where the module saw it: the trailers, else a
    /// grpc-web trailer frame.
    pub fn status(&self) -> Option<Vec<u8>> {
        self.status
            .clone()
            .or_else(|| self.sent.status.map(|s| s.to_string().into_bytes()))
    }
}

/// The streams of one VM, by request context.
#[derive(Debug, Default)]
pub struct Streams {
    streams: HashMap<u32, Stream>,
}

impl Streams {
    /// Follows request `context`'s RPC; `false` when the table is full (the RPC is then counted
    /// at its end only, as the lean module counts it).
    pub fn start(&mut self, context: u32, rpc: usize) -> bool {
        if self.streams.len() >= MAX_STREAMS {
            return false;
        }
        self.streams.insert(
            context,
            Stream {
                rpc,
                ..Stream::default()
            },
        );
        true
    }

    /// Request `context`'s stream, if followed; no hashing while none is (every body chunk of
    /// every request asks).
    pub fn get_mut(&mut self, context: u32) -> Option<&mut Stream> {
        if self.streams.is_empty() {
            return None;
        }
        self.streams.get_mut(&context)
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// The RPC has ended: what was learnt of it.
    pub fn finish(&mut self, context: u32) -> Option<Stream> {
        self.streams.remove(&context)
    }
}

#[cfg(test)]
#[path = "../tests/unit/streams.rs"]
mod tests;

//! gRPC as the proxy sees it: which requests are gRPC, which RPC a path names, and the status an
//! RPC ended with, in the label values of grpc-go's interceptors (go-grpc-middleware's
//! `providers/prometheus`): `grpc_type`, `grpc_service`, `grpc_method`, `grpc_code`.
//!
//! A failed RPC is HTTP 200 with `grpc-status` in the trailers (or in the headers of a
//! trailers-only answer), so the status comes from there; an answer without one (Envoy or a
//! non-gRPC upstream answered) is mapped as gRPC clients map HTTP statuses (grpc's
//! `doc/http-grpc-status-mapping.md`).

crate::labels::label_enum! {
    /// `grpc_type`: how the RPC streams, as configured (`unknown` for a method not listed).
    pub enum RpcType {
        Unary => "unary",
        ClientStream => "client_stream",
        ServerStream => "server_stream",
        BidiStream => "bidi_stream",
        Unknown => "unknown",
    }
}

crate::labels::label_enum! {
    /// `grpc_code`: the status codes 0-16 in order, spelled as Go spells them.
    pub enum Code {
        Ok => "OK",
        Canceled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// The label values of an RPC not listed: the bound holds whatever paths clients send.
pub const OTHER: &str = "other";

/// Whether a request's content-type makes it gRPC: `application/grpc`, with any `+proto`,
/// `+json` (or other) suffix or parameters, and grpc-web's `application/grpc-web*`.
pub fn is_grpc(content_type: &[u8]) -> bool {
    let Some(rest) = content_type
        .get(..16)
        .filter(|p| p.eq_ignore_ascii_case(b"application/grpc"))
        .and_then(|_| content_type.get(16..))
    else {
        return false;
    };
    matches!(rest.first(), None | Some(b'+' | b';' | b' '))
        || rest
            .get(..4)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"-web"))
}

/// `/package.Service/Method` → (`package.Service`, `Method`), or `None` for any other shape.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let name = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    (name(service) && name(method)).then_some((service, method))
}

/// The RPCs a configuration lists, found by path; anything else is the last index, `other`.
#[derive(Debug, Clone, Default)]
pub struct Methods {
    /// (path, index in `labels`), sorted by path.
    by_path: Vec<(String, usize)>,
    /// Per index: (type, service, method); the last is `other`'s.
    labels: Vec<(RpcType, String, String)>,
}

impl Methods {
    /// `methods` as validated (`config::validate`): a path that is not `/Service/Method` is
    /// left out.
    pub fn new(methods: &[(String, RpcType)]) -> Self {
        let mut labels = Vec::with_capacity(methods.len() + 1);
        let mut by_path = Vec::with_capacity(methods.len());
        for (path, kind) in methods {
            if let Some((service, method)) = split_path(path) {
                by_path.push((path.clone(), labels.len()));
                labels.push((*kind, service.to_string(), method.to_string()));
            }
        }
        labels.push((RpcType::Unknown, OTHER.to_string(), OTHER.to_string()));
        by_path.sort_unstable();
        Methods { by_path, labels }
    }

    /// How many label sets: the listed RPCs and `other`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The index of the RPC at `path` (query ignored), `other`'s when not listed.
    pub fn find(&self, path: &[u8]) -> usize {
        let path = path.split(|&b| b == b'?').next().unwrap_or_default();
        self.by_path
            .binary_search_by(|(p, _)| p.as_bytes().cmp(path))
            .ok()
            .and_then(|at| self.by_path.get(at))
            .map_or(self.labels.len().saturating_sub(1), |(_, i)| *i)
    }

    /// (grpc_type, grpc_service, grpc_method) of index `i`.
    pub fn labels(&self, i: usize) -> (&'static str, &str, &str) {
        self.labels
            .get(i)
            .map_or((RpcType::Unknown.label(), OTHER, OTHER), |(t, s, m)| {
                (t.label(), s.as_str(), m.as_str())
            })
    }
}

/// What the proxy knows of an RPC when it has ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ending<'a> {
    /// `grpc-status` from the trailers, or from the headers of a trailers-only answer.
    pub grpc_status: Option<&'a [u8]>,
    /// The HTTP status; `None` when no response was sent (the client or the app went away).
    pub http_status: Option<u16>,
    /// The client's deadline (`grpc-timeout`, in ms) and the RPC's duration in ms.
    pub deadline_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    /// The answer is grpc-web: a status it sent after messages is in its last body frame, which
    /// only the body-reading module reads.
    pub web: bool,
}

/// The RPC's `grpc_code`.
pub fn code(ending: &Ending<'_>) -> Code {
    if let Some(status) = ending.grpc_status {
        return crate::pairs::decimal(status)
            .and_then(|n| usize::try_from(n).ok())
            .and_then(|n| Code::ALL.get(n).copied())
            .unwrap_or(Code::Unknown);
    }
    match ending.http_status {
        // No answer at all: the client gave up, at its deadline or before. Its deadline runs
        // from before the request reached Envoy, so Envoy's time is a little shorter: a
        // tolerance of 5 % (10 ms at least) tells a deadline from an earlier cancel.
        None => match (ending.deadline_ms, ending.duration_ms) {
            (Some(deadline), Some(took))
                if took.saturating_add((deadline / 20).max(10)) >= deadline =>
            {
                Code::DeadlineExceeded
            }
            _ => Code::Canceled,
        },
        Some(400) => Code::Internal,
        Some(401) => Code::Unauthenticated,
        Some(403) => Code::PermissionDenied,
        Some(404) => Code::Unimplemented,
        Some(429 | 502 | 503 | 504) => Code::Unavailable,
        // grpc-web's status in a body frame the proxy did not read: not a code to invent.
        Some(200) if ending.web => Code::Unknown,
        // A 200 without a status: the stream ended without trailers (grpc-go: Internal).
        Some(200) => Code::Internal,
        Some(_) => Code::Unknown,
    }
}

/// A `grpc-timeout` value (`<up to 8 digits><H|M|S|m|u|n>`) in whole milliseconds.
pub fn timeout_ms(value: &[u8]) -> Option<u64> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n = crate::pairs::decimal(digits)?;
    let ns_per_unit: u64 = match unit {
        b'H' => 3_600_000_000_000,
        b'M' => 60_000_000_000,
        b'S' => 1_000_000_000,
        b'm' => 1_000_000,
        b'u' => 1_000,
        b'n' => 1,
        _ => return None,
    };
    Some(n.saturating_mul(ns_per_unit) / 1_000_000)
}

#[cfg(test)]
#[path = "../tests/unit/grpc.rs"]
mod tests;

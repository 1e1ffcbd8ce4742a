//! The bounds a configuration is held to, and the defaults of what it may leave out.

pub const DEFAULT_INTERVAL_SECONDS: u64 = 30;
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const MAX_INTERVAL_SECONDS: u64 = 86_400;
pub const MAX_TIMEOUT_MS: u64 = 60_000;
pub const MAX_BODY_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// A counter reads at most this much of a body: the VM keeps the copy until the body has ended
/// (and its memory never shrinks).
pub const MAX_COUNTER_BODY_BYTES: usize = 1024 * 1024;
/// Body conditions of one counter on one body: each is looked up in the body.
pub const MAX_BODY_CONDITIONS: usize = 16;
/// Every request is checked against every counter and every header name some counter reads:
/// these bound that work, far above any real configuration.
pub const MAX_COUNTERS: usize = 256;
/// gRPC methods listed by name: each is a row of series (started, handled by 17 codes, ...).
pub const MAX_GRPC_METHODS: usize = 256;
pub const MAX_HEADER_NAMES: usize = 32;
/// Constant labels of a configuration (`labels`): a few say which app, tenant or cluster.
pub const MAX_CONSTANT_LABELS: usize = 8;
/// Dynamic labels of one metric (`counters[].labels`, `http_metrics.labels`): each multiplies
/// the metric's series by its values + 2.
pub const MAX_DYNAMIC_LABELS: usize = 4;
pub const MAX_LABEL_VALUES: usize = 32;
pub const MAX_LABEL_VALUE_BYTES: usize = 64;
/// `prefix`: enough for a short namespace (`gw_`, `edge_proxy_`), short enough to stay one.
pub const MAX_PREFIX_BYTES: usize = 32;
/// The most series (label sets: a histogram counts once) a configuration may make, by
/// [`super::series_bound`]: far above a useful configuration, it catches a label set multiplied out of
/// all proportion before a proxy holds it.
pub const MAX_SERIES: u64 = 100_000;

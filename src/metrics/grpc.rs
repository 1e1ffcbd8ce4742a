//! The gRPC metrics' series: an RPC started, handled by code, its handling time and messages.
//! Like the request metrics, they take the dynamic labels of `http_metrics.labels`: then their
//! series live in the sparse table (`Registry::labelled`), else in flat tables by RPC.

use super::{id_in, labelled_key, Family, Kind, MetricHost, Registry};
use crate::filter::Filter;
use crate::grpc::Code;
use crate::names::{GRPC_HANDLED, GRPC_HANDLING, GRPC_MSG_RECEIVED, GRPC_MSG_SENT, GRPC_STARTED};

/// One RPC: its index in the configured methods (`grpc::Methods`), and the values of the headers
/// read beyond the fixed ones, for dynamic labels (`Completed::request_headers`).
#[derive(Debug, Clone, Copy)]
pub struct Rpc<'a> {
    pub index: usize,
    pub request_headers: &'a [Option<&'a [u8]>],
    /// Empty when counted before any response (the body-reading module's `started`).
    pub response_headers: &'a [Option<&'a [u8]>],
}

/// The stat name of a gRPC series. `method="POST"` leads the gRPC labels: the `method` tag's
/// regex (the HTTP metrics' label) would otherwise also match inside `grpc_method=.=…`, and Envoy
/// takes a regex's leftmost match, so it finds this one and the gRPC series keep their method.
fn grpc_series(
    filter: &Filter,
    name: &str,
    rpc: usize,
    code: Option<Code>,
    dynamic: &[(&str, &str)],
) -> String {
    let Some(grpc) = filter.grpc.as_ref() else {
        return String::new();
    };
    let (kind, service, method) = grpc.methods.labels(rpc);
    let mut labels = vec![
        ("method", "POST"),
        ("grpc_type", kind),
        ("grpc_service", service),
        ("grpc_method", method),
    ];
    if let Some(code) = code {
        labels.push(("grpc_code", code.label()));
    }
    filter.series_name(name, &labels, dynamic)
}

impl Registry {
    /// Adds `value` to (counters) or records it in (histograms) one gRPC series: `family` says
    /// which, `series` is its index in the flat order (RPC, then code for `handled`).
    #[allow(clippy::too_many_arguments)]
    fn grpc_update(
        &mut self,
        filter: &Filter,
        host: &impl MetricHost,
        family: Family,
        series: usize,
        rpc: &Rpc<'_>,
        code: Option<Code>,
        value: u64,
    ) -> bool {
        let (kind, name) = match family {
            Family::GrpcStarted => (Kind::Counter, GRPC_STARTED),
            Family::GrpcHandled => (Kind::Counter, GRPC_HANDLED),
            Family::GrpcHandling => (Kind::Histogram, GRPC_HANDLING),
            Family::GrpcReceived => (Kind::Counter, GRPC_MSG_RECEIVED),
            _ => (Kind::Counter, GRPC_MSG_SENT),
        };
        let set = filter
            .http
            .as_ref()
            .map(|h| &h.labels)
            .filter(|l| !l.is_empty());
        let id = match set {
            None => {
                let table = match family {
                    Family::GrpcStarted => &mut self.grpc_started,
                    Family::GrpcHandled => &mut self.grpc_handled,
                    Family::GrpcHandling => &mut self.grpc_handling,
                    Family::GrpcReceived => &mut self.grpc_received,
                    _ => &mut self.grpc_sent,
                };
                id_in(table.get_mut(series), host, kind, || {
                    grpc_series(filter, name, rpc.index, code, &[])
                })
            }
            Some(set) => {
                let combination = set.combination(rpc.request_headers, rpc.response_headers);
                let key = labelled_key(family, series, set.combinations(), combination);
                self.labelled_id(key, host, kind, &|| {
                    grpc_series(filter, name, rpc.index, code, &set.pairs(combination))
                })
            }
        };
        id.is_some_and(|id| match kind {
            Kind::Counter => host.increment(id, value),
            _ => host.record(id, value),
        })
    }

    /// An RPC began (the body-reading module, at its request headers) or ended (the lean
    /// module, which has no callback at the start: started is counted with handled).
    pub fn grpc_started(&mut self, filter: &Filter, host: &impl MetricHost, rpc: &Rpc<'_>) -> bool {
        self.grpc_update(filter, host, Family::GrpcStarted, rpc.index, rpc, None, 1)
    }

    /// An RPC ended with `code`, after `duration_ms`, having passed `messages` (received, sent)
    /// when they were counted. Nothing is defined for an option the configuration leaves off.
    pub fn grpc_handled(
        &mut self,
        filter: &Filter,
        host: &impl MetricHost,
        rpc: &Rpc<'_>,
        code: Code,
        duration_ms: Option<u64>,
        messages: Option<(u64, u64)>,
    ) -> bool {
        let Some(grpc) = filter.grpc.as_ref() else {
            return false;
        };
        let handled = rpc.index * Code::COUNT + code.index();
        let mut ok = self.grpc_update(
            filter,
            host,
            Family::GrpcHandled,
            handled,
            rpc,
            Some(code),
            1,
        );
        if let Some(ms) = duration_ms.filter(|_| grpc.handling_time) {
            ok &= self.grpc_update(filter, host, Family::GrpcHandling, rpc.index, rpc, None, ms);
        }
        if let Some((received, sent)) = messages.filter(|_| grpc.messages) {
            ok &= self.grpc_update(
                filter,
                host,
                Family::GrpcReceived,
                rpc.index,
                rpc,
                None,
                received,
            );
            ok &= self.grpc_update(filter, host, Family::GrpcSent, rpc.index, rpc, None, sent);
        }
        ok
    }
}

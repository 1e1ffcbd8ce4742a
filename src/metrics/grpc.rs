//! The gRPC metrics' series: an RPC started, handled by code, its handling time and messages.

use super::{id_in, Kind, MetricHost, Registry};
use crate::filter::Filter;
use crate::grpc::Code;
use crate::names::{GRPC_HANDLED, GRPC_HANDLING, GRPC_MSG_RECEIVED, GRPC_MSG_SENT, GRPC_STARTED};

/// The stat name of a gRPC series. `method="POST"` leads the gRPC labels: the `method` tag's
/// regex (the HTTP metrics' label) would otherwise also match inside `grpc_method=.=…`, and Envoy
/// takes a regex's leftmost match, so it finds this one and the gRPC series keep their method.
fn grpc_series(filter: &Filter, name: &str, rpc: usize, code: Option<Code>) -> String {
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
    filter.series_name(name, &labels, &[])
}

impl Registry {
    /// An RPC began (the body-reading module, at its request headers) or ended (the lean
    /// module, which has no callback at the start: started is counted with handled).
    pub fn grpc_started(&mut self, filter: &Filter, host: &impl MetricHost, rpc: usize) -> bool {
        id_in(self.grpc_started.get_mut(rpc), host, Kind::Counter, || {
            grpc_series(filter, GRPC_STARTED, rpc, None)
        })
        .is_some_and(|id| host.increment(id, 1))
    }

    /// An RPC ended with `code`, after `duration_ms`, having passed `messages` (received, sent)
    /// when they were counted.
    pub fn grpc_handled(
        &mut self,
        filter: &Filter,
        host: &impl MetricHost,
        rpc: usize,
        code: Code,
        duration_ms: Option<u64>,
        messages: Option<(u64, u64)>,
    ) -> bool {
        let mut ok = id_in(
            self.grpc_handled.get_mut(rpc * Code::COUNT + code.index()),
            host,
            Kind::Counter,
            || grpc_series(filter, GRPC_HANDLED, rpc, Some(code)),
        )
        .is_some_and(|id| host.increment(id, 1));
        if let Some(ms) = duration_ms.filter(|_| !self.grpc_handling.is_empty()) {
            ok &= id_in(
                self.grpc_handling.get_mut(rpc),
                host,
                Kind::Histogram,
                || grpc_series(filter, GRPC_HANDLING, rpc, None),
            )
            .is_some_and(|id| host.record(id, ms));
        }
        if let Some((received, sent)) = messages.filter(|_| !self.grpc_received.is_empty()) {
            for (table, name, n) in [
                (&mut self.grpc_received, GRPC_MSG_RECEIVED, received),
                (&mut self.grpc_sent, GRPC_MSG_SENT, sent),
            ] {
                ok &= id_in(table.get_mut(rpc), host, Kind::Counter, || {
                    grpc_series(filter, name, rpc, None)
                })
                .is_some_and(|id| host.increment(id, n));
            }
        }
        ok
    }
}

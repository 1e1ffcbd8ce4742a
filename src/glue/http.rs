//! The HTTP context: reads the few things a request's metrics need, in the phases they appear,
//! and hands them to the registry when the stream completes.

use super::host::{self, Map, Stats};
use super::root::State;
use super::warn_limited;
use crate::filter::Exchange;
use crate::metrics::Completed;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::rc::Rc;

pub struct Http {
    state: Option<Rc<State>>,
    /// `None` until classified, and for requests nothing observes.
    exchange: Option<Exchange>,
    start_ns: Option<u64>,
    status: Option<u16>,
    response_headers: Vec<Option<Vec<u8>>>,
    request_bytes: u64,
    response_bytes: u64,
}

impl Http {
    pub fn new(state: Option<Rc<State>>) -> Self {
        Http {
            state,
            exchange: None,
            start_ns: None,
            status: None,
            response_headers: Vec::new(),
            request_bytes: 0,
            response_bytes: 0,
        }
    }
}

fn read(map: Map, name: &str) -> Option<Vec<u8>> {
    host::header(map, name).unwrap_or_else(|status| {
        warn_limited(|| format!("cannot read header {name} (host status {status})"));
        None
    })
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(state) = &self.state else {
            return Action::Continue;
        };
        let filter = &state.filter;
        if !filter.observes_requests() {
            return Action::Continue;
        }
        let method = read(Map::Request, ":method").unwrap_or_default();
        let path = if filter.need_path(&method) {
            read(Map::Request, ":path").and_then(|p| String::from_utf8(p).ok())
        } else {
            None
        };
        let request_headers: Vec<Option<Vec<u8>>> = filter
            .rules
            .request_headers
            .iter()
            .map(|name| read(Map::Request, name))
            .collect();
        let exchange = filter.classify(&method, path.as_deref(), &request_headers);
        if exchange.handler.is_some() {
            self.start_ns = host::now_ns();
        }
        if exchange.handler.is_some() || !exchange.candidates.is_empty() {
            self.exchange = Some(exchange);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        if self.exchange.is_some() {
            self.request_bytes = self.request_bytes.saturating_add(body_size as u64);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let (Some(state), Some(exchange)) = (&self.state, &self.exchange) else {
            return Action::Continue;
        };
        self.status = read(Map::Response, ":status")
            .and_then(|s| std::str::from_utf8(&s).ok().and_then(|s| s.parse().ok()));
        if !exchange.candidates.is_empty() {
            self.response_headers = state
                .filter
                .rules
                .response_headers
                .iter()
                .map(|name| read(Map::Response, name))
                .collect();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, _end_of_stream: bool) -> Action {
        if self.exchange.is_some() {
            self.response_bytes = self.response_bytes.saturating_add(body_size as u64);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(state), Some(exchange)) = (&self.state, &self.exchange) else {
            return;
        };
        let duration_ms = match (self.start_ns, host::now_ns()) {
            (Some(start), Some(end)) if exchange.handler.is_some() => {
                Some(end.saturating_sub(start) / 1_000_000)
            }
            _ => None,
        };
        let done = Completed {
            exchange,
            status: self.status,
            response_headers: &self.response_headers,
            duration_ms,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
        };
        let Ok(mut registry) = state.registry.try_borrow_mut() else {
            warn_limited(|| "registry busy; request not recorded".to_string());
            return;
        };
        if !registry.record(&state.filter, &Stats, &done) {
            warn_limited(|| "the host refused a metric update".to_string());
        }
    }
}

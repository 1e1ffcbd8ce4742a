//! Host-call probe for `bench/run.py --diagnose`. The plugin configuration is a list of
//! whitespace-separated steps, each done once per request:
//!
//! - `req:<name>`   read request header `<name>` (on request headers)
//! - `resp:<name>`  read response header `<name>` (on response headers)
//! - `time`         read the clock on request headers and again at the end of the stream
//! - `counter`      increment a counter (at the end of the stream)
//! - `histogram`    record a value in a histogram (at the end of the stream; each one its own)
//!
//! No configuration: no host call at all per request (then it is the empty filter plus a
//! configuration read at start-up).

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| Box::new(Root { plan: Rc::new(Plan::default()) }));
}}

#[derive(Default)]
struct Plan {
    request_headers: Vec<String>,
    response_headers: Vec<String>,
    time: bool,
    counters: Vec<u32>,
    histograms: Vec<u32>,
}

struct Root {
    plan: Rc<Plan>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self
            .get_plugin_configuration()
            .and_then(|c| String::from_utf8(c).ok())
            .unwrap_or_default();
        let mut plan = Plan::default();
        for step in config.split_whitespace() {
            if let Some(name) = step.strip_prefix("req:") {
                plan.request_headers.push(name.to_string());
            } else if let Some(name) = step.strip_prefix("resp:") {
                plan.response_headers.push(name.to_string());
            } else if step == "time" {
                plan.time = true;
            } else if step == "counter" {
                let name = format!("probe_counter_{}_total", plan.counters.len());
                match hostcalls::define_metric(MetricType::Counter, &name) {
                    Ok(id) => plan.counters.push(id),
                    Err(_) => return false,
                }
            } else if step == "histogram" {
                let name = format!("probe_histogram_{}", plan.histograms.len());
                match hostcalls::define_metric(MetricType::Histogram, &name) {
                    Ok(id) => plan.histograms.push(id),
                    Err(_) => return false,
                }
            } else {
                return false;
            }
        }
        self.plan = Rc::new(plan);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe {
            plan: self.plan.clone(),
            seen: 0,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Probe {
    plan: Rc<Plan>,
    /// Keeps the reads from being optimised away.
    seen: usize,
}

impl Context for Probe {}

impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        for name in &self.plan.request_headers {
            if let Ok(Some(v)) = hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name) {
                self.seen += v.len();
            }
        }
        if self.plan.time {
            if let Ok(t) = hostcalls::get_current_time() {
                self.seen += t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos() as usize & 1);
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        for name in &self.plan.response_headers {
            if let Ok(Some(v)) = hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
            {
                self.seen += v.len();
            }
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if self.plan.time {
            let _ = hostcalls::get_current_time();
        }
        for &id in &self.plan.counters {
            let _ = hostcalls::increment_metric(id, 1);
        }
        for &id in &self.plan.histograms {
            let _ = hostcalls::record_metric(id, self.seen as u64);
        }
    }
}

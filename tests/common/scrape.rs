//! A Prometheus scrape parsed with prometheus-parse: values, histogram buckets, series.

use super::*;
use prometheus_parse::{Scrape, Value};
use std::collections::BTreeMap;

/// A parsed scrape.
pub struct Metrics {
    pub scrape: Scrape,
    pub text: String,
}

pub fn scrape_url(url: &str) -> Metrics {
    let text = agent()
        .get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    parse_scrape(text)
}

// prometheus-parse's sample regex (`name{[^}]+}`) skips `name{} 1` and cuts a label value that
// holds a brace, as route templates do (`handler="/users/{user_id}"`). Both are valid exposition
// text, so we hand it an equivalent form: no empty braces, and braces inside quoted values swapped
// for stand-ins that are swapped back after parsing.
const OPEN: char = '\u{2045}';
const CLOSE: char = '\u{2046}';

pub fn parse_scrape(text: String) -> Metrics {
    let normalized: String = text
        .lines()
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            let mut quoted = false;
            for c in line.chars() {
                match c {
                    '"' => quoted = !quoted,
                    '{' if quoted => {
                        out.push(OPEN);
                        continue;
                    }
                    '}' if quoted => {
                        out.push(CLOSE);
                        continue;
                    }
                    _ => {}
                }
                out.push(c);
            }
            out.replacen("{} ", " ", 1) + "\n"
        })
        .collect();
    let scrape = Scrape::parse(normalized.lines().map(|l| Ok(l.to_string()))).unwrap();
    Metrics { scrape, text }
}

/// A label value as exported (the stand-ins swapped back).
fn restore(value: &str) -> String {
    value.replace(OPEN, "{").replace(CLOSE, "}")
}

fn labels_match(sample: &prometheus_parse::Sample, labels: &[(&str, &str)]) -> bool {
    sample.labels.len() == labels.len()
        && labels
            .iter()
            .all(|(k, v)| sample.labels.get(k).map(restore).as_deref() == Some(*v))
}

impl Metrics {
    /// The value of the counter or gauge `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels_match(s, labels))
            .and_then(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
    }

    /// The observation count of histogram `name` with exactly `labels` (its +Inf bucket).
    /// Observations at or below `le` (a cumulative bucket) of one histogram series.
    pub fn histogram_bucket(&self, name: &str, labels: &[(&str, &str)], le: f64) -> Option<f64> {
        self.scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels_match(s, labels))
            .and_then(|s| match &s.value {
                Value::Histogram(buckets) => {
                    buckets.iter().find(|b| b.less_than == le).map(|b| b.count)
                }
                _ => None,
            })
    }

    /// The finite bucket bounds (`le`) of one histogram series, in order.
    pub fn histogram_bounds(&self, name: &str, labels: &[(&str, &str)]) -> Option<Vec<f64>> {
        self.scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels_match(s, labels))
            .and_then(|s| match &s.value {
                Value::Histogram(buckets) => Some(
                    buckets
                        .iter()
                        .map(|b| b.less_than)
                        .filter(|le| le.is_finite())
                        .collect(),
                ),
                _ => None,
            })
    }

    /// All observations of one histogram series (its `+Inf` bucket).
    pub fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.histogram_bucket(name, labels, f64::INFINITY)
    }

    /// Every sample of `name`, as (sorted labels, value).
    pub fn series(&self, name: &str) -> BTreeMap<Vec<(String, String)>, f64> {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| {
                let v = match s.value {
                    Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                    Value::Histogram(ref b) => b.iter().find(|b| b.less_than.is_infinite())?.count,
                    _ => return None,
                };
                let mut labels: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), restore(v)))
                    .collect();
                labels.sort();
                Some((labels, v))
            })
            .collect()
    }

    /// Number of distinct series the filter exports (non-Envoy metrics).
    pub fn filter_series_count(&self) -> usize {
        self.scrape
            .samples
            .iter()
            .filter(|s| !s.metric.starts_with("envoy_"))
            .count()
    }
}

//! `app-metrics check --from IN-FORCE NEW`: whether moving from the configurations in force to new
//! ones needs a proxy restart, and what to add first.
//!
//! Envoy reads its stats tags (Istio's `extraStatTags`) and histogram bucket settings
//! (`sidecar.istio.io/statsHistogramBuckets`) only when it starts, and both are per proxy, not per
//! plugin. So the proxy has what the configurations in force need (`needs`, as `check` printed it
//! for them): a change needs a restart exactly when NEW needs a tag or a bucket setting none of
//! them needed. The bucket key is one for every configuration that makes histograms
//! (`needs::BUCKET_KEY`): new handlers, label values and plugins need none; new label names do. Adding one the configuration in force does not use yet is harmless, so they go
//! first (a restart), then the configuration. The module is per plugin and loaded with it (no
//! restart): a configuration that starts reading a body needs the body-reading module before or
//! with it, since the lean one refuses it.

use crate::module::bodies_module_text;
use crate::needs::{buckets_json, envoy_bucket_setting, envoy_stats_tag, needs, tags_json};
use crate::report::Valid;
use app_metrics::config::{first_body_read, LEAN_MODULE};

/// What `--from` prints (stdout), and whether the change needs a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub stdout: Vec<String>,
    pub restart: bool,
}

/// What the proxy starts with for `configs`: every stats tag and bucket setting one of them
/// needs, in order of appearance.
fn union(configs: &[Valid]) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    let (mut tags, mut buckets) = (Vec::new(), Vec::new());
    for v in configs {
        let n = needs(&v.config);
        for tag in n.extra_stat_tags {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        for bucket in n.histogram_buckets {
            if !buckets.contains(&bucket) {
                buckets.push(bucket);
            }
        }
    }
    (tags, buckets)
}

/// Compares the configurations of two files: `old` in force, `new` to apply (`new_name` is how
/// NEW is shown).
pub fn change(old: &[Valid], new_name: &str, new: &[Valid]) -> Change {
    let (old_tags, old_buckets) = union(old);
    let (new_tags, new_buckets) = union(new);
    let add_tags: Vec<&String> = new_tags.iter().filter(|t| !old_tags.contains(t)).collect();
    let add_buckets: Vec<&(String, Vec<f64>)> = new_buckets
        .iter()
        .filter(|b| !old_buckets.contains(b))
        .collect();
    let restart = !add_tags.is_empty() || !add_buckets.is_empty();
    let mut out = Vec::new();
    if restart {
        out.push(format!(
            "{new_name}: restart needed: the proxy reads stats tags and histogram buckets when it \
             starts; add these to the proxy first (a restart), then apply {new_name}"
        ));
    } else {
        out.push(format!(
            "{new_name}: no restart needed: the stats tags and histogram buckets in force cover it"
        ));
    }
    for tag in &add_tags {
        out.push(format!("  add stats tag: {tag}"));
    }
    for (prefix, _) in &add_buckets {
        out.push(format!("  add histogram buckets: {prefix}"));
    }
    // Istio's values replace the whole list or map: those in force and the new ones together.
    if !add_tags.is_empty() {
        let all: Vec<String> = old_tags
            .iter()
            .chain(add_tags.iter().copied())
            .cloned()
            .collect();
        out.push(format!("  extraStatTags: {}", tags_json(&all)));
    }
    if !add_buckets.is_empty() {
        let all: Vec<(String, Vec<f64>)> = old_buckets
            .iter()
            .chain(add_buckets.iter().copied())
            .cloned()
            .collect();
        out.push(format!(
            "  sidecar.istio.io/statsHistogramBuckets: {}",
            buckets_json(&all)
        ));
    }
    // Plain Envoy: entries to append to the bootstrap's stats_config.
    for tag in &add_tags {
        out.push(format!("  Envoy stats_tags: {}", envoy_stats_tag(tag)));
    }
    for (prefix, bounds) in &add_buckets {
        out.push(format!(
            "  Envoy histogram_bucket_settings: {}",
            envoy_bucket_setting(prefix, bounds)
        ));
    }
    out.extend(module_lines(old, new));
    Change {
        stdout: out,
        restart,
    }
}

/// The module each NEW configuration needs where it differs from its counterpart in force: the
/// only one on each side, or the one at the same place (the document number aside).
fn module_lines(old: &[Valid], new: &[Valid]) -> Vec<String> {
    let single = old.len() == 1 && new.len() == 1;
    let mut lines = Vec::new();
    for v in new {
        let before = if single {
            old.first()
        } else {
            old.iter()
                .find(|o| place(&o.location) == place(&v.location))
        };
        let read_before = before.and_then(|o| first_body_read(&o.config)).is_some();
        match first_body_read(&v.config) {
            Some(field) if !read_before => lines.push(format!(
                "  module for {}: {}, and the configuration in force reads none: load it before \
                 or with this change (the lean module refuses this configuration)",
                v.shown,
                bodies_module_text(&field)
            )),
            None if read_before => lines.push(format!(
                "  module for {}: it reads no body: {LEAN_MODULE} will do (the body-reading \
                 module keeps working)",
                v.shown
            )),
            _ => {}
        }
    }
    lines
}

/// A location without its document number: `WasmPlugin default/app-metrics, spec.pluginConfig`
/// is the same plugin whichever document of a file holds it.
fn place(location: &str) -> &str {
    let Some(rest) = location.strip_prefix("document ") else {
        return location;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    rest.strip_prefix(", ").unwrap_or(rest)
}

#[cfg(test)]
#[path = "../../../tests/unit/app-metrics/change.rs"]
mod tests;

//! What `app-metrics check FILE` prints for one file: each configuration found, valid (and what
//! it needs) or the filter's own error with its field path. `read` is the part `--from` shares.

use crate::module::bodies_module_text;
use crate::needs::needs;
use crate::scan::{scan_yaml, Found, Options, Scan};
use app_metrics::config::{self, Config};

/// What `check` prints: results on stdout, errors and notes on stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
    pub errors: usize,
}

/// A configuration the filter would accept: where it is in its file, and what it reads as.
#[derive(Debug, Clone)]
pub struct Valid {
    /// Inside the file (`document 1, WasmPlugin default/app-metrics, spec.pluginConfig`), empty
    /// for a `*.json` file.
    pub location: String,
    /// The file's name, then `location`: how it is shown.
    pub shown: String,
    pub config: Config,
}

/// Checks one file: `name` is how it is shown (and `*.json` says it is a plugin configuration).
pub fn check(name: &str, contents: &[u8], options: Options) -> Report {
    let (valid, mut report) = read(name, contents, options);
    for v in &valid {
        let needs = needs(&v.config);
        report.stdout.push(format!("{}: valid", v.shown));
        if let Some(field) = config::first_body_read(&v.config) {
            report
                .stdout
                .push(format!("  module: {}", bodies_module_text(&field)));
        }
        report
            .stdout
            .push(format!("  extraStatTags: {}", needs.extra_stat_tags_json()));
        report.stdout.push(format!(
            "  sidecar.istio.io/statsHistogramBuckets: {}",
            needs.histogram_buckets_json()
        ));
        report
            .stdout
            .push(format!("  series: {}", needs.series_text()));
    }
    report
}

/// The configurations in one file the filter would accept; the others' errors, and notes on what
/// was skipped, in the report (nothing on its stdout).
pub fn read(name: &str, contents: &[u8], options: Options) -> (Vec<Valid>, Report) {
    let scan = if name.to_ascii_lowercase().ends_with(".json") {
        Scan {
            found: vec![Found {
                location: String::new(),
                bytes: Ok(contents.to_vec()),
                lean: None,
            }],
            ..Scan::default()
        }
    } else {
        scan_yaml(contents, options)
    };
    let mut report = Report::default();
    let mut valid = Vec::new();
    let at = |location: &str| {
        if location.is_empty() {
            name.to_string()
        } else {
            format!("{name} {location}")
        }
    };
    for (location, module) in &scan.skipped {
        report.stderr.push(format!(
            "{}: skipped: loads {module}, not app-metrics-wasm (--any-module checks it)",
            at(location)
        ));
    }
    for (location, message) in &scan.problems {
        report.stderr.push(format!("{}: {message}", at(location)));
        report.errors += 1;
    }
    for found in &scan.found {
        let outcome = found
            .bytes
            .clone()
            .and_then(|bytes| config::parse(&bytes).map_err(|e| e.to_string()));
        match outcome {
            Ok(config) => {
                // The lean module refuses body rules: its own message, and where the file loads it.
                if let (Err(refusal), Some(lean)) =
                    (config::check_build(&config, false), &found.lean)
                {
                    report.stderr.push(format!(
                        "{}: {refusal}; {lean} loads the lean build",
                        at(&found.location)
                    ));
                    report.errors += 1;
                    continue;
                }
                valid.push(Valid {
                    shown: at(&found.location),
                    location: found.location.clone(),
                    config,
                });
            }
            Err(message) => {
                report
                    .stderr
                    .push(format!("{}: {message}", at(&found.location)));
                report.errors += 1;
            }
        }
    }
    if scan.found.is_empty() && scan.problems.is_empty() {
        report.stderr.push(format!(
            "{name}: no app-metrics-wasm configuration found (looked for wasm HTTP filters, \
             WasmPlugins and TrafficExtensions loading app_metrics.wasm, plugin.wasm or an \
             app-metrics image)"
        ));
        report.errors += 1;
    }
    (valid, report)
}

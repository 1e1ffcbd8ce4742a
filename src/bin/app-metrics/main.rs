//! `app-metrics check [--any-module] FILE...`: validates app-metrics-wasm configurations as the
//! filter does and prints what each needs (README "Check before you apply"). This file: the
//! arguments and the exit status.
//!
//! | module | concern |
//! |---|---|
//! | `report.rs` | one file's check: what is printed, what counts as an error |
//! | `scan.rs` | finding configurations in JSON / Envoy / Istio / Kubernetes files |
//! | `bytes.rs` | the bytes the filter receives, from an Envoy `Any` or an Istio `Struct` |
//! | `module.rs` | which module a file loads: this one or not, lean or body-reading |
//! | `needs.rs` | what a valid configuration needs from the proxy: stats tags, buckets, series |
//! | `yaml.rs` | reading serde_yaml's tree |
//!
//! A host tool (serde_yaml, base64 are host-only dependencies): for wasm32 this is an empty
//! program, so that building every target of the crate for wasm32 (`cargo build --target
//! wasm32-wasip1`, clippy) still works.

#[cfg(not(target_arch = "wasm32"))]
mod bytes;
#[cfg(not(target_arch = "wasm32"))]
mod module;
#[cfg(not(target_arch = "wasm32"))]
mod needs;
#[cfg(not(target_arch = "wasm32"))]
mod report;
#[cfg(not(target_arch = "wasm32"))]
mod scan;
#[cfg(not(target_arch = "wasm32"))]
mod yaml;

/// Usage of the `app-metrics` binary.
#[cfg(not(target_arch = "wasm32"))]
const USAGE: &str = "\
usage: app-metrics check [--any-module] FILE...

Validates app-metrics-wasm configurations exactly as the filter does, and prints what each valid
one needs: the body-reading module when it reads a body (app_metrics_bodies.wasm, image tag
<version>-bodies; an error where the file loads app_metrics.wasm or an image tag without
-bodies); Istio's extraStatTags (the filter's labels and the configuration's own) and the
sidecar.istio.io/statsHistogramBuckets annotation; and the most series it can make.

FILE: a *.json file (the plugin configuration itself), or YAML / JSON holding Envoy wasm HTTP
filters (bootstrap, LDS, ECDS, EnvoyFilter, ConfigMaps with *.yaml data), Istio WasmPlugins or
TrafficExtensions: multi-document, kubectl kustomize output included. `-` reads YAML from
stdin (shown as `(stdin)`).

--any-module  check every wasm filter and plugin, not only those loading app_metrics.wasm,
              plugin.wasm or an app-metrics image

Exit status: 0 when every configuration found is valid, 1 on any error (or a file in which
none is found), 2 on a usage error.
";

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use report::check;
    use scan::Options;
    use std::io::Read;
    use std::process::ExitCode;

    let usage = |message: &str| {
        eprint!("{message}{USAGE}");
        ExitCode::from(2)
    };
    let mut args = std::env::args_os().skip(1);
    match args.next().as_ref().and_then(|a| a.to_str()) {
        Some("check") => {}
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => return usage(""),
    }
    let mut options = Options::default();
    let mut files = Vec::new();
    let mut options_done = false;
    for arg in args {
        match arg.to_str() {
            Some("--") if !options_done => options_done = true,
            Some("--any-module") if !options_done => options.any_module = true,
            Some(flag) if !options_done && flag.starts_with("--") => {
                return usage(&format!("unknown option {flag}\n"));
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        return usage("no FILE given\n");
    }
    let mut errors = 0;
    for file in files {
        let stdin = file == "-";
        let name = if stdin {
            "(stdin)".to_string()
        } else {
            file.to_string_lossy().into_owned()
        };
        let contents = if stdin {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map(|_| buf)
        } else {
            std::fs::read(&file)
        };
        let contents = match contents {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{name}: cannot read: {e}");
                errors += 1;
                continue;
            }
        };
        let report = check(&name, &contents, options);
        for line in &report.stdout {
            println!("{line}");
        }
        for line in &report.stderr {
            eprintln!("{line}");
        }
        errors += report.errors;
    }
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}

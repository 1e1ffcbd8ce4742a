//! `app-metrics check [--any-module] FILE...`: validates app-metrics-wasm configurations as the
//! filter does and prints what each needs (docs/configuration.md, "Check before you apply"); with `--from
//! IN-FORCE`, whether changing to them needs a proxy restart. This file: the arguments and the
//! exit status.
//!
//! | module | concern |
//! |---|---|
//! | `report.rs` | one file's check: what is printed, what counts as an error |
//! | `change.rs` | `--from`: what a change from the configurations in force needs |
//! | `scan.rs` | finding configurations in JSON / Envoy / Istio / Kubernetes files |
//! | `bytes.rs` | the bytes the filter receives, from an Envoy `Any` or an Istio `Struct` |
//! | `module.rs` | which module a file loads: this one or not, lean or body-reading |
//! | `descriptor.rs` | `grpc-methods`: the `grpc` section from a protobuf descriptor set |
//! | `needs.rs` | what a valid configuration needs from the proxy: stats tags, buckets, series |
//! | `yaml.rs` | reading serde_yaml's tree |
//!
//! A host tool (serde_yaml, base64 are host-only dependencies): for wasm32 this is an empty
//! program, so that building every target of the crate for wasm32 (`cargo build --target
//! wasm32-wasip1`, clippy) still works.

#[cfg(not(target_arch = "wasm32"))]
mod bytes;
#[cfg(not(target_arch = "wasm32"))]
mod change;
#[cfg(not(target_arch = "wasm32"))]
mod descriptor;
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

#[cfg(not(target_arch = "wasm32"))]
use std::{ffi::OsString, process::ExitCode};

/// Usage of the `app-metrics` binary.
#[cfg(not(target_arch = "wasm32"))]
const USAGE: &str = "\
usage: app-metrics check [--any-module] FILE...
       app-metrics check [--any-module] --from IN-FORCE NEW
       app-metrics grpc-methods DESCRIPTOR_SET

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
--from IN-FORCE
              compare instead: IN-FORCE holds the configurations the proxy runs (set up with
              the stats tags and buckets they need), NEW the ones to apply. Says whether the
              change needs a proxy restart (Envoy reads stats tags and histogram buckets only
              when it starts) and which tags and buckets to add first, and when a
              configuration starts or stops reading a body, which module it needs

grpc-methods prints the configuration's `grpc` section for every method of every service in
DESCRIPTOR_SET (protoc --descriptor_set_out=FILE), each with its streaming type.

Exit status: 0 when every configuration found is valid (with --from: and the change needs no
restart), 3 with --from when the change needs a restart, 1 on any error (or a file in which
none is found), 2 on a usage error.
";

/// `--from`: the change needs a proxy restart.
#[cfg(not(target_arch = "wasm32"))]
const RESTART: u8 = 3;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> ExitCode {
    use scan::Options;

    let usage = |message: &str| {
        eprint!("{message}{USAGE}");
        ExitCode::from(2)
    };
    let mut args = std::env::args_os().skip(1);
    match args.next().as_ref().and_then(|a| a.to_str()) {
        Some("check") => {}
        Some("grpc-methods") => {
            return match (args.next(), args.next()) {
                (Some(file), None) => grpc_methods(&file),
                _ => usage("grpc-methods takes one file (a protobuf descriptor set)\n"),
            };
        }
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => return usage(""),
    }
    let mut options = Options::default();
    let mut from = None;
    let mut files = Vec::new();
    let mut options_done = false;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--") if !options_done => options_done = true,
            Some("--any-module") if !options_done => options.any_module = true,
            Some("--from") if !options_done => match args.next() {
                Some(file) if from.is_none() => from = Some(file),
                Some(_) => return usage("--from given twice\n"),
                None => return usage("--from needs a file (the configurations in force)\n"),
            },
            Some(flag) if !options_done && flag.starts_with("--") => {
                return usage(&format!("unknown option {flag}\n"));
            }
            _ => files.push(arg),
        }
    }
    match (from, files.as_slice()) {
        (_, []) => usage("no FILE given\n"),
        (None, _) => check_files(&files, options),
        (Some(old), [new]) if old == "-" && new == "-" => {
            usage("--from: stdin can be read once, for IN-FORCE or NEW\n")
        }
        (Some(old), [new]) => check_change(&old, new, options),
        (Some(_), _) => usage("--from compares with one file (NEW)\n"),
    }
}

/// `check FILE...`: each file's configurations, valid or not.
#[cfg(not(target_arch = "wasm32"))]
fn check_files(files: &[OsString], options: scan::Options) -> ExitCode {
    let mut errors = 0;
    for file in files {
        let Some((name, contents)) = read_input(file) else {
            errors += 1;
            continue;
        };
        let report = report::check(&name, &contents, options);
        print_lines(&report.stdout, &report.stderr);
        errors += report.errors;
    }
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `check --from OLD NEW`: what moving from OLD's configurations to NEW's needs; both must be
/// valid (an invalid NEW would be refused, and OLD is what the proxy was set up for).
#[cfg(not(target_arch = "wasm32"))]
fn check_change(old: &OsString, new: &OsString, options: scan::Options) -> ExitCode {
    let (Some((old_name, old_contents)), Some((new_name, new_contents))) =
        (read_input(old), read_input(new))
    else {
        return ExitCode::FAILURE;
    };
    let (old_valid, old_report) = report::read(&old_name, &old_contents, options);
    let (new_valid, new_report) = report::read(&new_name, &new_contents, options);
    print_lines(&[], &old_report.stderr);
    print_lines(&[], &new_report.stderr);
    if old_report.errors + new_report.errors > 0 {
        return ExitCode::FAILURE;
    }
    let change = change::change(&old_valid, &new_name, &new_valid);
    print_lines(&change.stdout, &[]);
    if change.restart {
        ExitCode::from(RESTART)
    } else {
        ExitCode::SUCCESS
    }
}

/// `grpc-methods FILE`: the `grpc` section, pretty-printed, or why the file gives none.
#[cfg(not(target_arch = "wasm32"))]
fn grpc_methods(file: &OsString) -> ExitCode {
    let Some((name, contents)) = read_input(file) else {
        return ExitCode::FAILURE;
    };
    match descriptor::grpc_section(&contents) {
        Ok(section) => {
            println!("{section:#}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("{name}: {why}");
            ExitCode::FAILURE
        }
    }
}

/// A file's name as shown and its contents (`-`: stdin), or `None` after saying why not.
#[cfg(not(target_arch = "wasm32"))]
fn read_input(file: &OsString) -> Option<(String, Vec<u8>)> {
    use std::io::Read;
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
        std::fs::read(file)
    };
    match contents {
        Ok(c) => Some((name, c)),
        Err(e) => {
            eprintln!("{name}: cannot read: {e}");
            None
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn print_lines(stdout: &[String], stderr: &[String]) {
    for line in stdout {
        println!("{line}");
    }
    for line in stderr {
        eprintln!("{line}");
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}

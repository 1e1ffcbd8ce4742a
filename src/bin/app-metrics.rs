//! `app-metrics check [--any-module] FILE...`: validates app-metrics-wasm configurations as the
//! filter does and prints what each needs (src/check.rs; README "Check before you apply").
//!
//! A host tool: for wasm32 this is an empty program, so that building every target of the
//! crate for wasm32 (`cargo build --target wasm32-wasip1`, clippy) still works.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use app_metrics::check::{check, Options, USAGE};
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

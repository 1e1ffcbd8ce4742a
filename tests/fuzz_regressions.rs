//! Replays every input kept under `tests/fuzz_regressions/<target>/` through the same checks the
//! cargo-fuzz targets run (`fuzz/src/lib.rs`, included as is). `make fuzz` copies each crash it
//! finds there; the `seed-*` files are ordinary inputs that keep this test doing real work.
//! README files are skipped.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                !n.starts_with('.') && !n.to_ascii_uppercase().starts_with("README")
            })
        })
        .collect();
    files.sort();
    files
}

/// Every input of `target`, each under `catch_unwind` so one failure names all failing files.
fn replay(target: &str) {
    assert!(
        harness::TARGETS.contains(&target),
        "unknown fuzz target {target}"
    );
    let files = inputs(target);
    let mut failed = Vec::new();
    for file in &files {
        let name = file.display().to_string();
        let data = match std::fs::read(file) {
            Ok(data) => data,
            Err(e) => {
                failed.push(format!("{name}: {e}"));
                continue;
            }
        };
        match std::panic::catch_unwind(|| harness::run(target, &data)) {
            Ok(known) => assert!(known, "unknown fuzz target {target}"),
            Err(_) => failed.push(name),
        }
    }
    println!("{target}: replayed {} input(s)", files.len());
    assert!(
        failed.is_empty(),
        "{target}: {} of {} input(s) fail:\n  {}",
        failed.len(),
        files.len(),
        failed.join("\n  ")
    );
}

#[test]
fn config_parse() {
    replay("config_parse");
}

#[test]
fn path_templates() {
    replay("path_templates");
}

#[test]
fn value_extraction() {
    replay("value_extraction");
}

#[test]
fn body_reader() {
    replay("body_reader");
}

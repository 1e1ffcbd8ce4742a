//! Which module a configuration is loaded into, from where the file says its code comes from.
//!
//! "This module": the code's file name or URL path ends in a segment that is `plugin.wasm`
//! (Istio's name for the module of an image) or contains `app_metrics` / `app-metrics`
//! (`app_metrics.wasm`, the image `…/app-metrics-wasm:0.1.0`). `--any-module` takes every wasm
//! filter instead. Other wasm filters are reported as skipped.
//!
//! Two builds: the lean module refuses body rules (`config::check_build`). A configuration that
//! reads a body is told to need the body-reading one ([`BODIES_MODULE`], image tag
//! `<version>-bodies`), and is an error where the file clearly loads the lean one
//! ([`loads_lean_module`]): the filter would refuse it with the same message.

use crate::yaml::{get_map, get_str};
use app_metrics::config::{BODIES_MODULE, LEAN_MODULE};
use serde_yaml::Mapping;

/// `app_metrics_bodies.wasm (image tag 0.1.0-bodies): counters[2].match.response_json reads a
/// body`: the module a configuration reading a body needs, and the image `make oci` tags it.
pub fn bodies_module_text(field: &str) -> String {
    format!(
        "{BODIES_MODULE} (image tag {}): {field} reads a body",
        bodies_image_tag()
    )
}

/// The tag `make oci` gives the body-reading image: the crate version, `-bodies`.
pub fn bodies_image_tag() -> String {
    format!("{}{BODIES_TAG_SUFFIX}", env!("CARGO_PKG_VERSION"))
}

/// How the body-reading image's tag ends (`scripts/oci.sh`).
pub const BODIES_TAG_SUFFIX: &str = "-bodies";

/// Whether `source` clearly loads the lean module, which refuses body rules. `image`: `source` is
/// an Istio plugin URL, an image reference unless its scheme says otherwise (Istio's default is
/// `oci://`); lean when it has a tag that does not end in `-bodies` (a digest alone says nothing).
/// Otherwise (a file name, a `file://`/`http(s)://` URL): lean when the file is `app_metrics.wasm`.
/// Anything else (`plugin.wasm`, an image without a tag) may be either build.
pub fn loads_lean_module(source: &str, image: bool) -> bool {
    let (scheme, rest) = source.split_once("://").unwrap_or(("oci", source));
    if image && scheme.eq_ignore_ascii_case("oci") {
        let reference = rest.split('@').next().unwrap_or_default();
        let last = reference.rsplit('/').next().unwrap_or_default();
        return match last.split_once(':') {
            Some((_, tag)) => !tag.ends_with(BODIES_TAG_SUFFIX),
            None => false,
        };
    }
    let path = rest.split(['?', '#']).next().unwrap_or_default();
    path.rsplit('/').next() == Some(LEAN_MODULE)
}

/// Where a PluginConfig's code comes from, as shown in a skip note and matched by
/// [`is_this_module`].
pub fn code_source(config: &Mapping) -> String {
    let code = get_map(config, "vm_config").and_then(|vm| get_map(vm, "code"));
    let local = code.and_then(|c| get_map(c, "local"));
    let remote = code
        .and_then(|c| get_map(c, "remote"))
        .and_then(|r| get_map(r, "http_uri"))
        .and_then(|u| get_str(u, "uri"));
    if let Some(file) = local.and_then(|l| get_str(l, "filename")) {
        file.to_string()
    } else if let Some(var) = local.and_then(|l| get_str(l, "environment_variable")) {
        format!("the environment variable {var}")
    } else if local.is_some() {
        "inline code".to_string()
    } else if let Some(uri) = remote {
        uri.to_string()
    } else {
        "no vm_config.code".to_string()
    }
}

/// The field of a PluginConfig naming its code's file or URL, if it has one.
pub fn code_field(config: &Mapping) -> Option<&'static str> {
    let code = get_map(config, "vm_config").and_then(|vm| get_map(vm, "code"))?;
    if get_map(code, "local")
        .and_then(|l| get_str(l, "filename"))
        .is_some()
    {
        Some("vm_config.code.local.filename")
    } else if get_map(code, "remote")
        .and_then(|r| get_map(r, "http_uri"))
        .and_then(|u| get_str(u, "uri"))
        .is_some()
    {
        Some("vm_config.code.remote.http_uri.uri")
    } else {
        None
    }
}

/// Whether `source` (a file name, a URL, an image reference) is this module; see the module doc.
pub fn is_this_module(source: &str) -> bool {
    let without_scheme = source.split_once("://").map_or(source, |(_, rest)| rest);
    let path = without_scheme
        .split(['?', '#', '@'])
        .next()
        .unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    // An image tag (`app-metrics-wasm:0.1.0`).
    let name = last
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    name == "plugin.wasm" || name.contains("app_metrics") || name.contains("app-metrics")
}

#[cfg(test)]
#[path = "../../../tests/unit/app-metrics/module.rs"]
mod tests;

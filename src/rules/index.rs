//! Which rules a request's method and path can match, found without trying every rule: a
//! request pays for the rules of its method and route, not for every rule configured.
//!
//! Rules are grouped by method (each method named, and any method), then by path: any path,
//! exact paths (binary search), templates (matchit). One matchit router returns one route per
//! path, while several templates may match one path (`/users/{id}` and `/{kind}/{id}`), so
//! templates are kept in layers: two templates share a layer only if they part at literal text
//! ([`apart`]), so that no path can match both and matchit's walk finds the one that matches;
//! one lookup per layer finds every template that matches. REST routes (`/users/{id}`,
//! `/orders/{id}`, `/users/{id}/posts`) share one layer.

use crate::routes::insertable;
use matchit::Router;

#[derive(Debug, Clone, Default)]
pub struct Index {
    /// Rules naming a method, by method (sorted).
    methods: Vec<(Vec<u8>, Paths)>,
    any_method: Paths,
}

impl Index {
    /// Rule `rule` matches `method` (`None`: any) and `path` (`None`: any; a template with `{`).
    pub fn insert(&mut self, method: Option<&str>, path: Option<&str>, rule: usize) {
        let paths = match method {
            None => &mut self.any_method,
            Some(m) => {
                let at = match self
                    .methods
                    .binary_search_by(|(k, _)| k.as_slice().cmp(m.as_bytes()))
                {
                    Ok(at) => at,
                    Err(at) => {
                        self.methods
                            .insert(at, (m.as_bytes().to_vec(), Paths::default()));
                        at
                    }
                };
                match self.methods.get_mut(at) {
                    Some((_, paths)) => paths,
                    None => return,
                }
            }
        };
        paths.insert(path, rule);
    }

    fn of_method(&self, method: &[u8]) -> Option<&Paths> {
        let at = self
            .methods
            .binary_search_by(|(k, _)| k.as_slice().cmp(method))
            .ok()?;
        self.methods.get(at).map(|(_, paths)| paths)
    }

    /// Appends the rules whose method and path match (`path` without its query; `None`: only
    /// rules for any path match), in no particular order.
    pub fn matching(&self, method: &[u8], path: Option<&str>, out: &mut Vec<usize>) {
        if let Some(paths) = self.of_method(method) {
            paths.matching(path, out);
        }
        self.any_method.matching(path, out);
    }

    /// Whether a rule that `method` can match has a path condition.
    pub fn need_path(&self, method: &[u8]) -> bool {
        self.of_method(method).is_some_and(Paths::has_paths) || self.any_method.has_paths()
    }
}

#[derive(Debug, Clone, Default)]
struct Paths {
    any: Vec<usize>,
    /// Exact paths and their rules, sorted by path.
    exact: Vec<(String, Vec<usize>)>,
    /// Each template once, its layer and its rules; a router's value is an index here.
    templates: Vec<(String, usize, Vec<usize>)>,
    layers: Vec<Router<usize>>,
}

impl Paths {
    fn has_paths(&self) -> bool {
        !self.exact.is_empty() || !self.templates.is_empty()
    }

    fn insert(&mut self, path: Option<&str>, rule: usize) {
        let Some(path) = path else {
            self.any.push(rule);
            return;
        };
        if !path.contains('{') {
            match self.exact.binary_search_by(|(p, _)| p.as_str().cmp(path)) {
                Ok(at) => {
                    if let Some((_, rules)) = self.exact.get_mut(at) {
                        rules.push(rule);
                    }
                }
                Err(at) => self.exact.insert(at, (path.to_string(), vec![rule])),
            }
            return;
        }
        if let Some((_, _, rules)) = self.templates.iter_mut().find(|(t, _, _)| t == path) {
            rules.push(rule);
            return;
        }
        // Checked by config::validate; a template matchit refuses even alone matches nothing.
        if !insertable(path) {
            return;
        }
        let id = self.templates.len();
        let mut layer = 0;
        loop {
            let clash = self
                .templates
                .iter()
                .any(|(t, l, _)| *l == layer && !apart(t, path));
            if !clash {
                let Some(router) = self.layers.get_mut(layer) else {
                    // A new layer; a template matchit refuses even alone matches nothing.
                    let mut router = Router::new();
                    if router.insert(path, id).is_err() {
                        return;
                    }
                    self.layers.push(router);
                    break;
                };
                // On a copy: a refused insert must leave the layer as it was.
                let mut grown = router.clone();
                if grown.insert(path, id).is_ok() {
                    *router = grown;
                    break;
                }
            }
            layer += 1;
        }
        self.templates.push((path.to_string(), layer, vec![rule]));
    }

    fn matching(&self, path: Option<&str>, out: &mut Vec<usize>) {
        out.extend_from_slice(&self.any);
        let Some(path) = path else {
            return;
        };
        if let Ok(at) = self.exact.binary_search_by(|(p, _)| p.as_str().cmp(path)) {
            if let Some((_, rules)) = self.exact.get(at) {
                out.extend_from_slice(rules);
            }
        }
        for layer in &self.layers {
            let found = layer.at(path).ok().map(|m| *m.value);
            if let Some((_, _, rules)) = found.and_then(|id| self.templates.get(id)) {
                out.extend_from_slice(rules);
            }
        }
    }
}

/// Whether matchit, holding both templates in one router, finds each path's template: when the
/// first segment where they differ is literal text in both (or where one of them ends), they lie
/// in separate branches that no path can take both of. Anything else (a parameter against
/// another, a parameter against text: matchit does not always backtrack from one to the other,
/// the property test found `/{n}.json/a` hiding `/{id}/{id}/{id}`) goes in another layer.
pub(super) fn apart(a: &str, b: &str) -> bool {
    let literal = |s: Option<&str>| s.is_none_or(|s| !s.contains(['{', '}']));
    let (mut a, mut b) = (a.split('/'), b.split('/'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return false,
            (Some(x), Some(y)) if x == y => {}
            (x, y) => return literal(x) && literal(y),
        }
    }
}

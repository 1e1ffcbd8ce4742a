//! Route templates (`/users/{user_id}`) matched with `matchit`, the router axum uses.

use matchit::Router;

/// A set of templates; a path resolves to the index of the template it matches.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    router: Router<usize>,
    templates: Vec<String>,
}

impl Routes {
    /// Templates were checked by `config::validate`; one that still fails to insert is skipped.
    pub fn new(templates: &[String]) -> Self {
        let mut routes = Routes::default();
        for template in templates.iter().filter(|t| insertable(t)) {
            if routes
                .router
                .insert(template.as_str(), routes.templates.len())
                .is_ok()
            {
                routes.templates.push(template.clone());
            }
        }
        routes
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Index of the template matching `path` (query string ignored).
    pub fn find(&self, path: &str) -> Option<usize> {
        if self.templates.is_empty() {
            return None;
        }
        self.router.at(strip_query(path)).ok().map(|m| *m.value)
    }

    pub fn template(&self, index: usize) -> Option<&str> {
        self.templates.get(index).map(String::as_str)
    }
}

/// Whether matchit can take `template` without panicking: it panics past 26 parameters, so a
/// template with more than 16 parameter braces (escaped `{{` aside) is refused before it gets there.
pub fn insertable(template: &str) -> bool {
    template.replace("{{", "").matches('{').count() <= 16
}

/// The path without `?query` or `#fragment`.
pub fn strip_query(path: &str) -> &str {
    match path.find(['?', '#']) {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    }
}

#[cfg(test)]
#[path = "../tests/unit/routes.rs"]
mod tests;

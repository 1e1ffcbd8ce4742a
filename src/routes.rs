//! Route templates (`/users/{user_id}`) matched with `matchit`, the router axum uses.

use matchit::Router;

/// A set of templates; a path resolves to the index of the template it matches.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    router: Router<usize>,
    templates: Vec<String>,
}

/// matchit panics past 26 parameters in one route; far fewer is already odd.
pub const MAX_TEMPLATE_PARAMS: usize = 8;

impl Routes {
    /// The routes of `templates`, or the first that cannot be one, alone or beside the earlier
    /// ones: (its index, why). `config::validate` refuses a configuration with this very call,
    /// so what it accepts compiles.
    pub fn new(templates: &[String]) -> Result<Self, (usize, String)> {
        let mut routes = Routes::default();
        for (i, template) in templates.iter().enumerate() {
            routes.add(template).map_err(|e| (i, e))?;
        }
        Ok(routes)
    }

    /// The routes of those `templates` that can be routes beside the ones kept before them, the
    /// others left out: for feeding arbitrary templates to (fuzz targets, property tests).
    pub fn accepting(templates: &[String]) -> Self {
        let mut routes = Routes::default();
        for template in templates {
            let _ = routes.add(template);
        }
        routes
    }

    fn add(&mut self, template: &str) -> Result<(), String> {
        check_template(template)?;
        self.router
            .insert(template, self.templates.len())
            .map_err(|e| format!("{template:?} is not a usable route template: {e}"))?;
        self.templates.push(template.to_string());
        Ok(())
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

/// Why `template` alone cannot be a route template, if it cannot.
pub fn check_template(template: &str) -> Result<(), String> {
    let too_many =
        || format!("{template:?} has too many parameters (expected at most {MAX_TEMPLATE_PARAMS})");
    if !insertable(template) {
        return Err(too_many());
    }
    let mut router = Router::new();
    router
        .insert(template, 0usize)
        .map_err(|e| format!("{template:?} is not a usable route template: {e}"))?;
    match router.at(template) {
        Ok(m) if m.params.len() > MAX_TEMPLATE_PARAMS => Err(too_many()),
        _ => Ok(()),
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

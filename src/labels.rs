//! Label values and their encoding into Envoy stat names.
//!
//! Envoy custom metrics have no labels of their own. We encode them Istio-style in the name,
//! `handler=.=/login;.;method=.=POST;.;http_requests_total`, and the bootstrap's `stats_tags`
//! (one regex per label name) turn them back into Prometheus labels. Every value here comes from
//! a fixed set or from the configuration: never from the request itself.

/// A fixed set of label values as an enum: its variants in label order, `ALL`, `COUNT`,
/// `label()` and `index()` (the series index of the value). Used for every `reason` label:
/// `http_proxy_responses_total`'s and the self-metrics'.
macro_rules! label_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident => $label:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            pub const COUNT: usize = $name::ALL.len();
            const LABELS: &'static [&'static str] = &[$($label,)+];

            /// The label value.
            pub fn label(self) -> &'static str {
                $name::LABELS.get(self as usize).copied().unwrap_or("")
            }

            /// The value's position in `ALL`.
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}
pub(crate) use label_enum;

/// What a dynamic label reads when its header holds a value that is not listed.
pub const OTHER_VALUE: &str = "other";
/// What a dynamic label reads when its header is absent.
pub const ABSENT_VALUE: &str = "none";

/// Which header map a dynamic label's header is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// A label whose value comes from a header, mapped onto a fixed set: one of `values` when the
/// header's (first) value is exactly that, [`OTHER_VALUE`] when it is present but not listed,
/// [`ABSENT_VALUE`] when absent. So it takes `values.len() + 2` values at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dynamic {
    pub name: String,
    pub side: Side,
    /// The header's index among the headers the filter reads from that side beyond the fixed
    /// ones (`filter::REQUEST_RULE_HEADERS` onwards).
    pub header: usize,
    pub values: Vec<String>,
}

impl Dynamic {
    /// The index of the label value for a header value: listed values first, then `other`, then
    /// `none`.
    pub fn index(&self, value: Option<&[u8]>) -> usize {
        match value {
            None => self.values.len() + 1,
            Some(v) => self
                .values
                .iter()
                .position(|w| w.as_bytes() == v)
                .unwrap_or(self.values.len()),
        }
    }

    /// The label value at `index` (see [`Dynamic::index`]).
    pub fn label(&self, index: usize) -> &str {
        match self.values.get(index) {
            Some(v) => v,
            None if index == self.values.len() => OTHER_VALUE,
            None => ABSENT_VALUE,
        }
    }

    /// How many label values it can take.
    pub fn radix(&self) -> u64 {
        self.values.len() as u64 + 2
    }
}

/// The dynamic labels of one metric. A request's values are one number, the combination
/// (mixed radix over the labels), so a labelled series is found by (series, combination).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSet {
    pub labels: Vec<Dynamic>,
}

impl LabelSet {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// How many combinations of values the labels can take (1 without labels).
    pub fn combinations(&self) -> u64 {
        self.labels
            .iter()
            .fold(1u64, |n, l| n.saturating_mul(l.radix()))
    }

    /// The combination of a request: `request` and `response` hold the values of the headers
    /// read beyond the fixed ones (the labels' `header` indices), `None` when absent.
    pub fn combination(&self, request: &[Option<&[u8]>], response: &[Option<&[u8]>]) -> u64 {
        self.labels.iter().fold(0u64, |n, l| {
            let values = match l.side {
                Side::Request => request,
                Side::Response => response,
            };
            let value = values.get(l.header).copied().flatten();
            n.saturating_mul(l.radix())
                .saturating_add(l.index(value) as u64)
        })
    }

    /// The (name, value) labels of `combination`, in the labels' order.
    pub fn pairs(&self, combination: u64) -> Vec<(&str, &str)> {
        let mut rest = combination;
        let mut pairs: Vec<(&str, &str)> = self
            .labels
            .iter()
            .rev()
            .map(|l| {
                let radix = l.radix();
                let index = usize::try_from(rest % radix).unwrap_or(usize::MAX);
                rest /= radix;
                (l.name.as_str(), l.label(index))
            })
            .collect();
        pairs.reverse();
        pairs
    }
}

/// Methods reported by name (Instrumentator's set); anything else is `other`.
pub const METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];
pub const OTHER_METHOD: usize = METHODS.len();
pub const METHOD_COUNT: usize = METHODS.len() + 1;

pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// A status outside 100-599 (Envoy passes on what the upstream sends).
pub const OTHER_STATUS: usize = STATUS_CLASSES.len();
pub const STATUS_COUNT: usize = STATUS_CLASSES.len() + 1;

/// Handler label for a path that matches no template (Instrumentator's grouping of untemplated routes).
pub const UNMATCHED_HANDLER: &str = "none";

pub fn method_index(method: &[u8]) -> usize {
    METHODS
        .iter()
        .position(|m| m.as_bytes() == method)
        .unwrap_or(OTHER_METHOD)
}

pub fn method_label(index: usize) -> &'static str {
    METHODS.get(index).copied().unwrap_or("other")
}

pub fn status_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => OTHER_STATUS,
    }
}

pub fn status_label(index: usize) -> &'static str {
    STATUS_CLASSES.get(index).copied().unwrap_or("other")
}

/// `k1=.=v1;.;k2=.=v2;.;name`: the stat name carrying `labels`.
pub fn stat_name(name: &str, labels: &[(&str, &str)]) -> String {
    let len = name.len()
        + labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>();
    let mut out = String::with_capacity(len);
    for (key, value) in labels {
        out.push_str(key);
        out.push_str("=.=");
        out.push_str(value);
        out.push_str(";.;");
    }
    out.push_str(name);
    out
}

#[cfg(test)]
#[path = "../tests/unit/labels.rs"]
mod tests;

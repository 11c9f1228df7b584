//! CloudWatch Embedded Metric Format: one JSON line on stdout per flush,
//! turned into metrics by CloudWatch Logs without any API call.

use serde_json::{Map, Value, json};

/// The namespace when `METRICS_NAMESPACE` is unset or empty.
pub const DEFAULT_NAMESPACE: &str = "LambdaSuite";
/// The `Stack` dimension when `STACK_NAME` is unset or empty (local runs).
pub const DEFAULT_STACK: &str = "local";

/// A set of counters sharing one namespace and dimension set.
#[derive(Debug, Clone)]
pub struct Emf {
    namespace: String,
    dimensions: Vec<(String, String)>,
    counts: Vec<(String, u64)>,
}

impl Emf {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            dimensions: Vec::new(),
            counts: Vec::new(),
        }
    }

    /// The counters of one of the suite's functions: the namespace from
    /// `METRICS_NAMESPACE`, dimensions [Stack, Function] with Stack from
    /// `STACK_NAME`, so two stacks in one account keep their figures apart.
    pub fn for_function(function: &str) -> Self {
        Self::for_function_with(|name| std::env::var(name).ok(), function)
    }

    fn for_function_with(env: impl Fn(&str) -> Option<String>, function: &str) -> Self {
        // Empty counts as unset: CloudWatch refuses an empty dimension value.
        let env_or = |name: &str, default: &str| {
            env(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self::for_stack(
            env_or("METRICS_NAMESPACE", DEFAULT_NAMESPACE),
            env_or("STACK_NAME", DEFAULT_STACK),
            function,
        )
    }

    /// [`Emf::for_function`] with the namespace and stack given.
    pub fn for_stack(
        namespace: impl Into<String>,
        stack: impl Into<String>,
        function: impl Into<String>,
    ) -> Self {
        Self::new(namespace)
            .dimension("Stack", stack)
            .dimension("Function", function)
    }

    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    /// Adds to a counter, creating it at zero first.
    pub fn add(&mut self, name: &str, n: u64) {
        match self.counts.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v += n,
            None => self.counts.push((name.to_owned(), n)),
        }
    }

    /// Adds each `(name, n)` in turn, as [`Emf::add`] does: a summary's
    /// counters listed once, `Emf::for_function(..).with_counts([..]).emit()`.
    pub fn with_counts<'a>(mut self, counts: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        for (name, n) in counts {
            self.add(name, n);
        }
        self
    }

    /// The EMF document for the counters so far.
    pub fn to_json(&self, timestamp_ms: u128) -> Value {
        let mut root = Map::new();
        let metric_defs: Vec<Value> = self
            .counts
            .iter()
            .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
            .collect();
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": metric_defs,
                }]
            }),
        );
        for (k, v) in &self.dimensions {
            root.insert(k.clone(), Value::from(v.as_str()));
        }
        for (k, v) in &self.counts {
            root.insert(k.clone(), Value::from(*v));
        }
        Value::Object(root)
    }

    /// Prints the document as one line on stdout, where Lambda ships it.
    pub fn emit(&self) {
        println!("{}", self.to_json(crate::time::now_millis().into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_shape() {
        let mut emf = Emf::new("Suite").dimension("Function", "cfn-responder");
        emf.add("Responses", 1);
        emf.add("Responses", 2);
        let doc = emf.to_json(1_700_000_000_000);
        assert_eq!(doc["Responses"], 3);
        assert_eq!(doc["Function"], "cfn-responder");
        let def = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(def["Namespace"], "Suite");
        assert_eq!(def["Dimensions"], json!([["Function"]]));
        assert_eq!(
            def["Metrics"],
            json!([{"Name": "Responses", "Unit": "Count"}])
        );
    }

    #[test]
    fn counts_listed_at_once_add_up_as_one_by_one() {
        let listed = Emf::new("Suite").with_counts([("Written", 2), ("Failed", 0), ("Written", 1)]);
        let mut one_by_one = Emf::new("Suite");
        one_by_one.add("Written", 2);
        one_by_one.add("Failed", 0);
        one_by_one.add("Written", 1);
        assert_eq!(listed.to_json(1), one_by_one.to_json(1));
        let doc = listed.to_json(1);
        assert_eq!(doc["Written"], 3);
        assert_eq!(doc["Failed"], 0);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "Written", "Unit": "Count"}, {"Name": "Failed", "Unit": "Count"}])
        );
    }

    #[test]
    fn function_metrics_are_kept_apart_by_stack() {
        let mut emf = Emf::for_stack("TeamSuite", "stack-a", "ses-bounce-handler")
            .dimension("Type", "Bounce");
        emf.add("Notifications", 1);
        let doc = emf.to_json(1_700_000_000_000);
        let def = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(def["Namespace"], "TeamSuite");
        // Extra dimensions come after the suite's pair.
        assert_eq!(def["Dimensions"], json!([["Stack", "Function", "Type"]]));
        assert_eq!(doc["Stack"], "stack-a");
        assert_eq!(doc["Function"], "ses-bounce-handler");
        assert_eq!(doc["Type"], "Bounce");
    }

    #[test]
    fn function_metrics_read_namespace_and_stack_from_the_environment() {
        let doc = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            Emf::for_function_with(lookup, "cfn-responder").to_json(0)
        };
        let namespace = |doc: &Value| doc["_aws"]["CloudWatchMetrics"][0]["Namespace"].clone();
        let set = doc(&[
            ("METRICS_NAMESPACE", "TeamSuite"),
            ("STACK_NAME", "stack-a"),
        ]);
        assert_eq!(namespace(&set), "TeamSuite");
        assert_eq!(set["Stack"], "stack-a");
        assert_eq!(set["Function"], "cfn-responder");
        for unset in [
            doc(&[]),
            doc(&[("METRICS_NAMESPACE", ""), ("STACK_NAME", " ")]),
        ] {
            assert_eq!(namespace(&unset), DEFAULT_NAMESPACE);
            assert_eq!(unset["Stack"], DEFAULT_STACK);
        }
    }
}

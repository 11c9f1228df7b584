//! CloudWatch Embedded Metric Format: one JSON line on stdout per flush,
//! turned into metrics by CloudWatch Logs without any API call.

use serde_json::{Map, Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

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
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        println!("{}", self.to_json(now));
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
}

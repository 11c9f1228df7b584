//! Reading `template.yaml` (as `process::sam_template` decodes it) the way
//! CloudFormation does before it creates anything.

use serde_json::Value;
use std::collections::BTreeMap;

/// Each parameter's default as CloudFormation passes it: a list default
/// joined with commas, a number as its text; `None` for no default.
pub fn parameter_defaults(template: &Value) -> BTreeMap<String, Option<String>> {
    template["Parameters"]
        .as_object()
        .expect("the template has Parameters")
        .iter()
        .map(|(name, parameter)| {
            let default = match &parameter["Default"] {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                Value::Array(items) => Some(
                    items
                        .iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                other => Some(other.to_string()),
            };
            (name.clone(), default)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_read_as_cloudformation_passes_them() {
        let template = json!({"Parameters": {
            "Text": {"Type": "String", "Default": "latest"},
            "Empty": {"Type": "String", "Default": ""},
            "Number": {"Type": "Number", "Default": 5},
            "List": {"Type": "CommaDelimitedList", "Default": ["a", "b"]},
            "Required": {"Type": "String"},
        }});
        let defaults = parameter_defaults(&template);
        assert_eq!(defaults["Text"].as_deref(), Some("latest"));
        assert_eq!(defaults["Empty"].as_deref(), Some(""));
        assert_eq!(defaults["Number"].as_deref(), Some("5"));
        assert_eq!(defaults["List"].as_deref(), Some("a,b"));
        assert_eq!(defaults["Required"], None);
    }
}

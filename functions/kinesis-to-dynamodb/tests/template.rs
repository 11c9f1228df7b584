//! The template against the function: every combination of the key and
//! mode parameters that deploys must also start, and the other way round.
//! A combination the function refuses at init must be refused by the
//! template's Rules, at deploy time, not on every batch after a deploy that
//! succeeded. The template is read with cfn-lint's loader (in `.venv`).

use kinesis_to_dynamodb::config::Config;
use serde_json::Value;
use shared::config::EnvReader;
use std::collections::HashMap;
use suite_tests::process::sam_template;

const PARAMETERS: [&str; 4] = [
    "KinesisMode",
    "ItemsSortKey",
    "ItemsSortKeySource",
    "PartitionKeySource",
];

/// The template's Parameters, Rules and the function's variables, as JSON.
fn template() -> Value {
    let mut template = sam_template();
    serde_json::json!({
        "Parameters": template["Parameters"].take(),
        "Rules": template.get_mut("Rules").map(Value::take).unwrap_or_default(),
        "Variables": template["Resources"]["KinesisToDynamoDbFunction"]["Properties"]["Environment"]["Variables"].take(),
    })
}

/// Evaluates a rule function (Ref, Equals, Not, And, Or, literals).
fn eval(expr: &Value, params: &HashMap<String, String>) -> Value {
    let Some(map) = expr.as_object() else {
        return expr.clone();
    };
    let (function, args) = map.iter().next().expect("a function");
    let arg = |i: usize| eval(&args[i], params);
    let all = || args.as_array().unwrap().iter().map(|a| eval(a, params));
    match function.as_str() {
        "Ref" => Value::from(params[args.as_str().unwrap()].clone()),
        "Fn::Equals" => Value::from(arg(0) == arg(1)),
        "Fn::Not" => Value::from(arg(0) == false),
        "Fn::And" => Value::from(all().all(|v| v == true)),
        "Fn::Or" => Value::from(all().any(|v| v == true)),
        other => panic!("the test does not evaluate {other}"),
    }
}

/// True if every rule that concerns this function holds.
fn deploys(template: &Value, params: &HashMap<String, String>) -> bool {
    template["Rules"]
        .as_object()
        .unwrap()
        .values()
        .filter(|rule| {
            let text = rule.to_string();
            PARAMETERS.iter().any(|p| text.contains(p))
        })
        .all(|rule| {
            let applies = rule
                .get("RuleCondition")
                .is_none_or(|c| eval(c, params) == true);
            !applies
                || rule["Assertions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|a| eval(&a["Assert"], params) == true)
        })
}

/// True if the function's init accepts the variables the template sets.
fn starts(template: &Value, params: &HashMap<String, String>) -> bool {
    let variables = template["Variables"].as_object().unwrap();
    let env = variables.iter().map(|(name, value)| {
        let value = match value.get("Ref").and_then(Value::as_str) {
            Some(param) => params
                .get(param)
                .cloned()
                .unwrap_or_else(|| format!("{param}-resource")),
            None => value.as_str().unwrap_or_default().to_owned(),
        };
        (name.clone(), value)
    });
    Config::from_env(EnvReader::from_map(env)).is_ok()
}

#[test]
fn every_combination_that_deploys_starts_and_the_other_way_round() {
    let template = template();
    let mut mismatches = Vec::new();
    for mode in ["latest", "append"] {
        for sort_key in ["", "sk"] {
            for sort_source in ["", "/line", "partitionKey", "sequenceNumber"] {
                for key_source in ["", "/id", "partitionKey", "sequenceNumber"] {
                    let mut params: HashMap<String, String> = template["Parameters"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(name, p)| {
                            let default = match &p["Default"] {
                                Value::String(s) => s.clone(),
                                Value::Null => String::new(),
                                other => other.to_string(),
                            };
                            (name.clone(), default)
                        })
                        .collect();
                    for (name, value) in
                        PARAMETERS
                            .iter()
                            .zip([mode, sort_key, sort_source, key_source])
                    {
                        params.insert(name.to_string(), value.to_owned());
                    }
                    let (deploys, starts) =
                        (deploys(&template, &params), starts(&template, &params));
                    if deploys != starts {
                        mismatches.push(format!(
                            "mode={mode} sort_key={sort_key:?} sort_source={sort_source:?} \
                             key_source={key_source:?}: deploys {deploys}, starts {starts}"
                        ));
                    }
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    for name in PARAMETERS {
        assert!(
            template["Parameters"].get(name).is_some(),
            "the template has no {name} parameter"
        );
    }
}

//! Deploy à la carte: template.yaml's conditions resolved for chosen
//! parameter sets, as CloudFormation would. For each set the test lists the
//! resources created and checks that they are exactly those of the functions
//! switched on, that nothing created refers to something absent (a deploy
//! failure), that the dashboard body is JSON with a row per deployed function
//! only, and that cfn-lint (with the SAM transform) passes on the resolved
//! template.

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use suite_tests::process::{sam_template, venv_tool, workspace_root};

/// (parameter, function name, logical-id prefixes of its resources).
const FUNCTIONS: [(&str, &str, &[&str]); 6] = [
    ("DeployCfnResponder", "cfn-responder", &["CfnResponder"]),
    (
        "DeployKinesisToDynamodb",
        "kinesis-to-dynamodb",
        &[
            "KinesisToDynamoDb",
            "Kinesis",
            "OrdersStream",
            "ItemsTable",
            "RejectsTable",
        ],
    ),
    (
        "DeploySesBounceHandler",
        "ses-bounce-handler",
        &[
            "SesBounceHandler",
            "SesNotifications",
            "SesBounce",
            "Suppression",
        ],
    ),
    ("DeploySnapshotCopier", "snapshot-copier", &["Snapshot"]),
    (
        "DeployTranscodeLauncher",
        "transcode-launcher",
        &["Transcode"],
    ),
    ("DeployRdsLogRotator", "rds-log-rotator", &["RdsLog"]),
];

/// Resources every deployed function shares: they exist when any is on.
const SHARED_PREFIXES: [&str; 2] = ["Alarm", "SuiteDashboard"];

/// Resources that need several functions at once (the in-stack custom
/// resource is served by cfn-responder for ses-bounce-handler's topic).
const NEEDS_ALL: [(&str, &[usize]); 1] = [("SesIdentityNotifications", &[2, 0])];

/// Resources that cost money while idle (hourly, monthly or provisioned):
/// one function's must never exist without it.
const COSTLY_TYPES: [&str; 6] = [
    "AWS::Kinesis::Stream",
    "AWS::KMS::Key",
    "AWS::DynamoDB::Table",
    "AWS::EC2::LaunchTemplate",
    "AWS::CloudWatch::Alarm",
    "AWS::S3::Bucket",
];

#[derive(Debug, Clone, PartialEq)]
enum Owner {
    Function(usize),
    Shared,
    All(Vec<usize>),
}

fn owner(id: &str) -> Owner {
    if let Some((_, needs)) = NEEDS_ALL.iter().find(|(name, _)| *name == id) {
        return Owner::All(needs.to_vec());
    }
    if SHARED_PREFIXES.iter().any(|p| id.starts_with(p)) {
        return Owner::Shared;
    }
    // The longest matching prefix wins (SesBounceHandler over Ses...).
    FUNCTIONS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, _, prefixes))| prefixes.iter().map(move |p| (i, *p)))
        .filter(|(_, p)| id.starts_with(p))
        .max_by_key(|(_, p)| p.len())
        .map(|(i, _)| Owner::Function(i))
        .unwrap_or_else(|| {
            panic!("{id}: no owning function (name it after one, or make it shared)")
        })
}

type Params = BTreeMap<String, String>;

/// Every parameter at its default, plus everything optional switched on so
/// that each resource the template can create is created.
fn full_params(template: &Value) -> Params {
    let mut params: Params = template["Parameters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, p)| {
            let default = match &p["Default"] {
                Value::String(s) => s.clone(),
                Value::Null => panic!("parameter {name} has no default"),
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            (name.clone(), default)
        })
        .collect();
    params.insert("SesIdentity".into(), "example.com".into());
    params.insert("AlarmEmail".into(), "ops@example.com".into());
    params
}

fn with_functions(base: &Params, on: &[usize]) -> Params {
    let mut params = base.clone();
    for (i, (param, _, _)) in FUNCTIONS.iter().enumerate() {
        let value = if on.contains(&i) { "true" } else { "false" };
        params.insert(param.to_string(), value.into());
    }
    params
}

struct Resolver<'a> {
    template: &'a Value,
    params: &'a Params,
}

impl Resolver<'_> {
    fn param_value(&self, name: &str) -> String {
        match self.params.get(name) {
            Some(v) => v.clone(),
            None => panic!("a condition refers to {name}, which is no parameter"),
        }
    }

    /// A value inside a condition: a literal, a parameter, or a Join of one.
    fn value(&self, expr: &Value) -> String {
        match expr {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Object(map) => match map.iter().next() {
                Some((f, arg)) if f == "Ref" => self.param_value(arg.as_str().unwrap()),
                Some((f, arg)) if f == "Fn::Join" => {
                    let sep = arg[0].as_str().unwrap();
                    let parts: Vec<String> = match &arg[1] {
                        Value::Array(items) => items.iter().map(|v| self.value(v)).collect(),
                        list_ref => self.value(list_ref).split(',').map(str::to_owned).collect(),
                    };
                    parts.join(sep)
                }
                _ => panic!("the test does not evaluate {expr}"),
            },
            other => panic!("the test does not evaluate {other}"),
        }
    }

    fn condition(&self, name: &str) -> bool {
        let expr = self.template["Conditions"]
            .get(name)
            .unwrap_or_else(|| panic!("no condition {name}"));
        self.eval(expr)
    }

    fn eval(&self, expr: &Value) -> bool {
        let (function, args) = expr
            .as_object()
            .and_then(|m| m.iter().next())
            .unwrap_or_else(|| panic!("not a condition function: {expr}"));
        let list = || args.as_array().unwrap().iter();
        match function.as_str() {
            "Fn::Equals" => self.value(&args[0]) == self.value(&args[1]),
            "Fn::Not" => !self.eval(&args[0]),
            "Fn::And" => list().all(|a| self.eval(a)),
            "Fn::Or" => list().any(|a| self.eval(a)),
            "Condition" => self.condition(args.as_str().unwrap()),
            other => panic!("the test does not evaluate {other}"),
        }
    }

    /// The value with every Fn::If taken; None where it is AWS::NoValue.
    fn resolve(&self, value: &Value) -> Option<Value> {
        match value {
            Value::Object(map) => {
                if let (1, Some(args)) = (map.len(), map.get("Fn::If")) {
                    let branch = if self.condition(args[0].as_str().unwrap()) {
                        &args[1]
                    } else {
                        &args[2]
                    };
                    return self.resolve(branch);
                }
                if map.len() == 1 && map.get("Ref") == Some(&json!("AWS::NoValue")) {
                    return None;
                }
                Some(Value::Object(
                    map.iter()
                        .filter_map(|(k, v)| self.resolve(v).map(|v| (k.clone(), v)))
                        .collect(),
                ))
            }
            Value::Array(items) => Some(Value::Array(
                items.iter().filter_map(|v| self.resolve(v)).collect(),
            )),
            other => Some(other.clone()),
        }
    }

    fn created(&self, entry: &Value) -> bool {
        entry
            .get("Condition")
            .is_none_or(|c| self.condition(c.as_str().unwrap()))
    }

    /// The template as deployed for these parameters: conditions applied,
    /// absent resources and outputs removed, defaults set to the values.
    fn resolved_template(&self) -> Value {
        let mut out = Map::new();
        for (section, body) in self.template.as_object().unwrap() {
            let body = match section.as_str() {
                "Conditions" => continue,
                "Resources" | "Outputs" => Value::Object(
                    body.as_object()
                        .unwrap()
                        .iter()
                        .filter(|(_, entry)| self.created(entry))
                        .map(|(id, entry)| {
                            let mut entry = self.resolve(entry).unwrap();
                            entry.as_object_mut().unwrap().remove("Condition");
                            (id.clone(), entry)
                        })
                        .collect(),
                ),
                "Parameters" => {
                    let mut params = body.clone();
                    for (name, p) in params.as_object_mut().unwrap() {
                        let value = &self.params[name];
                        // A number stays a number (AllowedValues compare by type).
                        p["Default"] = match (&p["Default"], value.parse::<serde_json::Number>()) {
                            (Value::Number(_), Ok(n)) => Value::Number(n),
                            _ => json!(value),
                        };
                    }
                    params
                }
                "Metadata" | "Rules" => body.clone(),
                _ => self.resolve(body).unwrap(),
            };
            out.insert(section.clone(), body);
        }
        Value::Object(out)
    }
}

/// Logical ids a resolved value refers to through Ref, GetAtt and Sub.
fn references(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, arg) in map {
                match key.as_str() {
                    "Ref" => {
                        if let Some(name) = arg.as_str() {
                            into.insert(name.to_owned());
                        }
                    }
                    "Fn::GetAtt" => {
                        let name = match arg {
                            Value::Array(parts) => parts[0].as_str().unwrap().to_owned(),
                            Value::String(s) => s.split('.').next().unwrap().to_owned(),
                            _ => panic!("GetAtt {arg}"),
                        };
                        into.insert(name);
                    }
                    "Fn::Sub" => {
                        let (text, locals) = match arg {
                            Value::String(s) => (s.as_str(), Map::new()),
                            Value::Array(parts) => (
                                parts[0].as_str().unwrap(),
                                parts[1].as_object().cloned().unwrap_or_default(),
                            ),
                            _ => panic!("Sub {arg}"),
                        };
                        for var in sub_variables(text) {
                            let name = var.split('.').next().unwrap();
                            if !locals.contains_key(name) {
                                into.insert(name.to_owned());
                            }
                        }
                        for local in locals.values() {
                            references(local, into);
                        }
                    }
                    _ => {}
                }
                if key != "Fn::Sub" {
                    references(arg, into);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, into)),
        _ => {}
    }
}

/// The `${Name}` variables of a Sub string (`${!Literal}` is none).
fn sub_variables(text: &str) -> Vec<String> {
    let mut vars = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').expect("a closed ${");
        if !after.starts_with('!') {
            vars.push(after[..end].to_owned());
        }
        rest = &after[end + 1..];
    }
    vars
}

/// What one parameter set creates, and what is wrong with it.
struct Outcome {
    created: BTreeSet<String>,
    problems: Vec<String>,
    resolved: Value,
}

fn deploy(template: &Value, params: &Params) -> Outcome {
    let resolver = Resolver { template, params };
    let resolved = resolver.resolved_template();
    let resources = resolved["Resources"].as_object().unwrap();
    let created: BTreeSet<String> = resources.keys().cloned().collect();
    let mut problems = Vec::new();
    let known = |name: &str| {
        name.starts_with("AWS::") || params.contains_key(name) || created.contains(name)
    };
    let entries = resources
        .iter()
        .map(|(id, r)| (format!("resource {id}"), r))
        .chain(
            resolved["Outputs"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(id, o)| (format!("output {id}"), o)),
        )
        .chain(resolved.get("Globals").map(|g| ("Globals".to_owned(), g)));
    for (what, entry) in entries {
        let mut refs = BTreeSet::new();
        references(entry, &mut refs);
        match entry.get("DependsOn") {
            Some(Value::String(s)) => {
                refs.insert(s.clone());
            }
            Some(Value::Array(items)) => {
                refs.extend(items.iter().map(|v| v.as_str().unwrap().to_owned()))
            }
            _ => {}
        }
        for name in refs.iter().filter(|n| !known(n)) {
            problems.push(format!("{what} refers to {name}, which is not created"));
        }
    }
    if let Some(body) = resources
        .values()
        .find(|r| r["Type"] == "AWS::CloudWatch::Dashboard")
        .map(|r| &r["Properties"]["DashboardBody"])
    {
        let on: BTreeSet<&str> = FUNCTIONS
            .iter()
            .filter(|(p, _, _)| params[*p] == "true")
            .map(|(_, name, _)| *name)
            .collect();
        match serde_json::from_str::<Value>(&render(body)) {
            Ok(dashboard) => {
                let shown: BTreeSet<&str> = dashboard["widgets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|w| w["properties"]["title"].as_str())
                    .filter_map(|t| FUNCTIONS.iter().find(|(_, n, _)| t.starts_with(n)))
                    .map(|(_, name, _)| *name)
                    .collect();
                if shown != on {
                    problems.push(format!("the dashboard shows {shown:?}, deployed {on:?}"));
                }
            }
            Err(e) => problems.push(format!("the dashboard body is not JSON: {e}")),
        }
    }
    Outcome {
        created,
        problems,
        resolved,
    }
}

/// A resolved Join/Sub string with every variable replaced by a placeholder.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => match map.iter().next().unwrap() {
            (f, Value::String(text)) if f == "Fn::Sub" => {
                let mut out = text.clone();
                for var in sub_variables(text) {
                    out = out.replace(&format!("${{{var}}}"), "placeholder");
                }
                out
            }
            (f, args) if f == "Fn::Join" => args[1]
                .as_array()
                .unwrap()
                .iter()
                .map(render)
                .collect::<Vec<_>>()
                .join(args[0].as_str().unwrap()),
            _ => panic!("the test does not render {value}"),
        },
        other => panic!("the test does not render {other}"),
    }
}

/// Resources expected for the functions switched on (optional ones on).
fn expected(template: &Value, on: &[usize]) -> BTreeSet<String> {
    template["Resources"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|id| match owner(id) {
            Owner::Function(i) => on.contains(&i),
            Owner::Shared => !on.is_empty(),
            Owner::All(needs) => needs.iter().all(|i| on.contains(i)),
        })
        .cloned()
        .collect()
}

/// Runs cfn-lint once over every resolved template; any error fails.
fn lint(outcomes: &[(String, Outcome)]) -> Vec<String> {
    let dir = workspace_root().join("target/template-conditions");
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<_> = outcomes
        .iter()
        .map(|(name, outcome)| {
            let path = dir.join(format!("{name}.json"));
            std::fs::write(&path, serde_json::to_vec_pretty(&outcome.resolved).unwrap()).unwrap();
            path
        })
        .collect();
    // Parameters and mappings only conditions used are unused once they are
    // resolved.
    let output = std::process::Command::new(venv_tool("cfn-lint"))
        .args(["--ignore-checks", "W2001", "W7001", "--"])
        .args(&files)
        .output()
        .expect("cfn-lint runs");
    if output.status.success() {
        return Vec::new();
    }
    vec![format!(
        "cfn-lint on the resolved templates in {}:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )]
}

fn costly(template: &Value, id: &str) -> bool {
    let resource = &template["Resources"][id];
    COSTLY_TYPES.contains(&resource["Type"].as_str().unwrap_or_default())
}

#[test]
fn each_parameter_set_creates_only_what_its_functions_need_and_lints_clean() {
    let template = sam_template();
    for (param, _, _) in FUNCTIONS {
        let p = &template["Parameters"][param];
        assert_eq!(p["Default"], "true", "{param}: {p}");
        assert_eq!(p["AllowedValues"], json!(["true", "false"]), "{param}: {p}");
    }
    // --guided and the console show the groups: every parameter in one.
    let groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        .as_array()
        .expect("an AWS::CloudFormation::Interface with ParameterGroups");
    let labels: Vec<&str> = groups
        .iter()
        .map(|g| g["Label"]["default"].as_str().unwrap())
        .collect();
    let mut want_labels = vec!["General", "Alarms"];
    want_labels.extend(FUNCTIONS.iter().map(|(_, name, _)| *name));
    assert_eq!(labels, want_labels);
    let mut grouped: Vec<&str> = groups
        .iter()
        .flat_map(|g| g["Parameters"].as_array().unwrap())
        .map(|p| p.as_str().unwrap())
        .collect();
    grouped.sort_unstable();
    let mut declared: Vec<&str> = template["Parameters"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    declared.sort_unstable();
    assert_eq!(grouped, declared, "each parameter in exactly one group");
    let full = full_params(&template);
    let all: Vec<usize> = (0..FUNCTIONS.len()).collect();
    let mut sets: Vec<(String, Vec<usize>)> = vec![("all-on".into(), all.clone())];
    for (i, (_, name, _)) in FUNCTIONS.iter().enumerate() {
        sets.push((format!("only-{name}"), vec![i]));
    }
    sets.push(("cfn-responder+ses-bounce-handler".into(), vec![0, 2]));
    sets.push(("kinesis-to-dynamodb+transcode-launcher".into(), vec![1, 4]));
    sets.push(("snapshot-copier+rds-log-rotator".into(), vec![3, 5]));

    let mut problems = Vec::new();
    let mut outcomes = Vec::new();
    let every: BTreeSet<String> = template["Resources"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for (name, on) in &sets {
        let outcome = deploy(&template, &with_functions(&full, on));
        let want = expected(&template, on);
        if outcome.created != want {
            problems.push(format!(
                "{name}: created but not expected {:?}; expected but not created {:?}",
                outcome.created.difference(&want).collect::<Vec<_>>(),
                want.difference(&outcome.created).collect::<Vec<_>>()
            ));
        }
        if on.len() == FUNCTIONS.len() && outcome.created != every {
            problems.push(format!(
                "{name}: not every resource is created: {:?}",
                every.difference(&outcome.created).collect::<Vec<_>>()
            ));
        }
        for id in &outcome.created {
            if let Owner::Function(i) = owner(id)
                && !on.contains(&i)
                && costly(&template, id)
            {
                problems.push(format!(
                    "{name}: {id} costs while idle, its function is off"
                ));
            }
        }
        problems.extend(outcome.problems.iter().map(|p| format!("{name}: {p}")));
        outcomes.push((name.clone(), outcome));
    }
    let only_responder = &outcomes[1].1.created;
    assert!(
        only_responder.contains("CfnResponderFunction"),
        "{only_responder:?}"
    );

    // Bring your own stream, output bucket and alarm topic; no SES identity.
    let mut own = with_functions(&full, &all);
    own.insert(
        "ExistingStreamArn".into(),
        "arn:aws:kinesis:us-east-1:111122223333:stream/orders".into(),
    );
    own.insert("TranscodeOutputBucket".into(), "my-outputs".into());
    own.insert(
        "AlarmTopicArn".into(),
        "arn:aws:sns:us-east-1:111122223333:ops".into(),
    );
    own.insert("SesIdentity".into(), String::new());
    own.insert("AlarmEmail".into(), String::new());
    let outcome = deploy(&template, &own);
    for absent in [
        "OrdersStream",
        "TranscodeOutputBucketResource",
        "AlarmTopic",
        "AlarmTopicKey",
        "AlarmEmailSubscription",
        "SesIdentityNotifications",
    ] {
        if outcome.created.contains(absent) {
            problems.push(format!("bring-your-own: {absent} is created"));
        }
    }
    problems.extend(
        outcome
            .problems
            .iter()
            .map(|p| format!("bring-your-own: {p}")),
    );
    outcomes.push(("bring-your-own".into(), outcome));

    problems.extend(lint(&outcomes));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

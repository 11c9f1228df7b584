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
use suite_tests::template::parameter_defaults;

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
    let mut params: Params = parameter_defaults(template)
        .into_iter()
        .map(|(name, default)| {
            let default = default.unwrap_or_else(|| panic!("parameter {name} has no default"));
            (name, default)
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
    // The SES identity is wired by cfn-responder for ses-bounce-handler's
    // topic: a set without both leaves it empty (a rule refuses it otherwise).
    if !(on.contains(&0) && on.contains(&2)) {
        params.insert("SesIdentity".into(), String::new());
    }
    params
}

/// The AssertDescriptions of the template's Rules that these parameters
/// break, as CloudFormation checks them before creating anything.
fn broken_rules(template: &Value, params: &Params) -> Vec<String> {
    let resolver = Resolver { template, params };
    let mut broken = Vec::new();
    for (name, rule) in template["Rules"].as_object().into_iter().flatten() {
        if rule.get("RuleCondition").is_some_and(|c| !resolver.eval(c)) {
            continue;
        }
        for assertion in rule["Assertions"].as_array().unwrap() {
            if !resolver.eval(&assertion["Assert"]) {
                broken.push(format!(
                    "{name}: {}",
                    assertion["AssertDescription"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    broken
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

/// The SAM translator (the AWS::Serverless transform CloudFormation runs),
/// offline: functions' code as `sam package` would upload it, no managed
/// policy looked up (the template names none). Writes `<name>.cfn.json`.
const SAM_TRANSLATE: &str = "\
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.public.exceptions import InvalidDocumentException
class NoManagedPolicies:
    def load(self):
        return {}
failed = False
for path in sys.argv[1:]:
    template = json.load(open(path))
    for rid, r in template['Resources'].items():
        if r['Type'] == 'AWS::Serverless::Function':
            r['Properties']['CodeUri'] = 's3://artifacts/%s.zip' % rid
    params = {k: v['Default'] for k, v in template['Parameters'].items()}
    try:
        out = transform(template, params, NoManagedPolicies())
    except InvalidDocumentException as e:
        failed = True
        print(path, [str(c) for c in e.causes])
        continue
    json.dump(out, open(path[:-len('.json')] + '.cfn.json', 'w'), indent=1)
sys.exit(1 if failed else 0)
";

/// Runs the SAM transform, then cfn-lint once over every resolved template
/// and its transformed output; any error fails.
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
    let translated = std::process::Command::new(venv_tool("python"))
        .arg("-c")
        .arg(SAM_TRANSLATE)
        .args(&files)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("the .venv python runs");
    if !translated.status.success() {
        return vec![format!(
            "the SAM transform fails:\n{}{}",
            String::from_utf8_lossy(&translated.stdout),
            String::from_utf8_lossy(&translated.stderr)
        )];
    }
    let transformed = files.iter().map(|f| f.with_extension("cfn.json"));
    // Parameters and mappings only conditions used are unused once they are
    // resolved.
    let output = std::process::Command::new(venv_tool("cfn-lint"))
        .args(["--ignore-checks", "W2001", "W7001", "--"])
        .args(&files)
        .args(transformed)
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
        let params = with_functions(&full, on);
        problems.extend(
            broken_rules(&template, &params)
                .iter()
                .map(|r| format!("{name}: refused by rule {r}")),
        );
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
    own.insert(
        "ExistingStreamKmsKeyArn".into(),
        "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab".into(),
    );
    own.insert("SesIdentity".into(), String::new());
    // Someone else's topic: its subscriptions are its owner's business.
    own.insert("AlarmEmail".into(), "ops@example.com".into());
    problems.extend(
        broken_rules(&template, &own)
            .iter()
            .map(|r| format!("bring-your-own: refused by rule {r}")),
    );
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

fn resources(template: &Value) -> &Map<String, Value> {
    template["Resources"].as_object().unwrap()
}

/// The function resource of each entry of FUNCTIONS, by its condition.
fn function_ids(template: &Value) -> Vec<(usize, String)> {
    let mut ids: Vec<(usize, String)> = resources(template)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, _)| match owner(id) {
            Owner::Function(i) => (i, id.clone()),
            other => panic!("function {id} owned by {other:?}"),
        })
        .collect();
    ids.sort();
    assert_eq!(ids.len(), FUNCTIONS.len(), "{ids:?}");
    ids
}

#[test]
fn each_function_logs_to_its_own_log_group_which_exists_before_it() {
    let template = sam_template();
    for (i, id) in function_ids(&template) {
        let function = &resources(&template)[&id];
        let group = &function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"];
        let group = group
            .as_str()
            .unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup is no Ref to a log group"));
        let log_group = &resources(&template)[group];
        assert_eq!(log_group["Type"], "AWS::Logs::LogGroup", "{id} -> {group}");
        assert_eq!(log_group["Condition"], function["Condition"], "{group}");
        // Named without the function (a cycle) and apart from the default
        // group Lambda would create on a first invocation.
        let mut refs = BTreeSet::new();
        references(&log_group["Properties"], &mut refs);
        assert!(
            refs.iter()
                .all(|r| r.starts_with("AWS::") || template["Parameters"].get(r).is_some()),
            "{group} depends on {refs:?}"
        );
        let (_, name, _) = FUNCTIONS[i];
        assert_eq!(
            function["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"], name,
            "{id}"
        );
    }
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Tracing"], json!({"Ref": "Tracing"}));
    let variables = &globals["Environment"]["Variables"];
    assert_eq!(
        variables["METRICS_NAMESPACE"],
        json!({"Ref": "MetricsNamespace"})
    );
    assert_eq!(variables["STACK_NAME"], json!({"Ref": "AWS::StackName"}));
}

#[test]
fn every_store_says_what_happens_to_it_on_delete_and_replace() {
    let template = sam_template();
    let stores = [
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::Kinesis::Stream",
        "AWS::SQS::Queue",
        "AWS::KMS::Key",
        "AWS::Logs::LogGroup",
        "AWS::SNS::Topic",
    ];
    let mut missing = Vec::new();
    for (id, r) in resources(&template) {
        if stores.contains(&r["Type"].as_str().unwrap()) {
            for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
                if r.get(policy).is_none() {
                    missing.push(format!("{id} has no {policy}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn kinesis_mapping_role_has_the_documented_permissions() {
    let template = sam_template();
    let policies = &resources(&template)["KinesisToDynamoDbFunction"]["Properties"]["Policies"];
    let mut granted = BTreeSet::new();
    for statement in policies
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["Statement"].as_array().cloned().unwrap_or_default())
    {
        // A conditional statement counts by what it grants when present.
        let statement = statement
            .get("Fn::If")
            .map_or(statement.clone(), |args| args[1].clone());
        match &statement["Action"] {
            Value::String(a) => granted.insert(a.clone()),
            Value::Array(items) => {
                for a in items {
                    granted.insert(a.as_str().unwrap().to_owned());
                }
                true
            }
            other => panic!("{other}"),
        };
    }
    // Lambda's list for Kinesis event sources (AWSLambdaKinesisExecutionRole).
    for action in [
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
        "kinesis:ListStreams",
        "kinesis:SubscribeToShard",
    ] {
        assert!(
            granted.contains(action),
            "{action} missing from {granted:?}"
        );
    }
}

#[test]
fn reserved_concurrency_and_the_ca_bundle_layer_are_parameters() {
    let template = sam_template();
    for (_, id) in function_ids(&template) {
        let properties = &resources(&template)[&id]["Properties"];
        if let Some(reserved) = properties.get("ReservedConcurrentExecutions") {
            let branches = reserved["Fn::If"]
                .as_array()
                .unwrap_or_else(|| panic!("{id}: a fixed ReservedConcurrentExecutions {reserved}"));
            assert!(branches[1].get("Ref").is_some(), "{id}: {reserved}");
            assert_eq!(branches[2], json!({"Ref": "AWS::NoValue"}), "{id}");
        }
    }
    let full = full_params(&template);
    let rotator = |params: &Params| {
        let resolver = Resolver {
            template: &template,
            params,
        };
        resolver
            .resolve(&resources(&template)["RdsLogRotatorFunction"]["Properties"])
            .unwrap()
    };
    let plain = rotator(&full);
    assert!(
        plain.get("ReservedConcurrentExecutions").is_none(),
        "{plain}"
    );
    assert!(plain.get("Layers").is_none());
    assert_eq!(plain["Environment"]["Variables"]["TLS_CA_FILE"], "");
    let mut with_layer = full.clone();
    let layer = "arn:aws:lambda:us-east-1:111122223333:layer:rds-ca:1";
    with_layer.insert("RdsCaBundleLayerArn".into(), layer.into());
    with_layer.insert("RdsLogRotatorReservedConcurrency".into(), "1".into());
    let layered = rotator(&with_layer);
    assert_eq!(layered["Layers"], json!([{"Ref": "RdsCaBundleLayerArn"}]));
    assert_eq!(
        layered["Environment"]["Variables"]["TLS_CA_FILE"],
        "/opt/global-bundle.pem"
    );
    assert_eq!(
        layered["ReservedConcurrentExecutions"],
        json!({"Ref": "RdsLogRotatorReservedConcurrency"})
    );
}

#[test]
fn every_failure_path_has_an_alarm_that_notifies() {
    let template = sam_template();
    let alarms: Vec<(&String, &Value)> = resources(&template)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .collect();
    let mut problems = Vec::new();
    let metric_of = |alarm: &Value| -> Value {
        // A plain alarm, or metric math over one metric.
        let p = &alarm["Properties"];
        match p["Metrics"].as_array() {
            None => {
                json!({"Namespace": p["Namespace"], "MetricName": p["MetricName"], "Dimensions": p["Dimensions"]})
            }
            Some(metrics) => metrics
                .iter()
                .find_map(|m| m.get("MetricStat").map(|s| s["Metric"].clone()))
                .unwrap(),
        }
    };
    for (id, alarm) in &alarms {
        let p = &alarm["Properties"];
        let topic = json!([{"Fn::If": ["AlarmTopicGiven", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}]);
        if p["AlarmActions"] != topic {
            problems.push(format!("{id} does not notify the alarm topic"));
        }
        let Owner::Function(i) = owner(id) else {
            problems.push(format!("{id} belongs to no function"));
            continue;
        };
        let (param, name, _) = FUNCTIONS[i];
        let condition = alarm["Condition"].as_str().unwrap_or_default();
        let expr = &template["Conditions"][condition];
        if expr != &json!({"Fn::Equals": [{"Ref": param}, "true"]}) {
            problems.push(format!("{id}: condition {condition} is not {param}'s"));
        }
        let metric = metric_of(alarm);
        if metric["Namespace"] == json!({"Ref": "MetricsNamespace"}) {
            let dims = json!([
                {"Name": "Stack", "Value": {"Ref": "AWS::StackName"}},
                {"Name": "Function", "Value": name},
            ]);
            if metric["Dimensions"] != dims {
                problems.push(format!(
                    "{id}: dimensions {} are not [Stack, Function]",
                    metric["Dimensions"]
                ));
            }
        } else if !["AWS/Lambda", "AWS/SQS"]
            .contains(&metric["Namespace"].as_str().unwrap_or_default())
        {
            problems.push(format!("{id}: namespace {}", metric["Namespace"]));
        }
    }
    let watched = |namespace: &str, name: &str, dim: &Value| {
        alarms.iter().any(|(_, a)| {
            let m = metric_of(a);
            m["Namespace"] == namespace
                && m["MetricName"] == name
                && m["Dimensions"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| &d["Value"] == dim))
        })
    };
    for (_, id) in function_ids(&template) {
        for metric in ["Errors", "Throttles"] {
            if !watched("AWS/Lambda", metric, &json!({"Ref": id})) {
                problems.push(format!("no {metric} alarm on {id}"));
            }
        }
    }
    for (id, r) in resources(&template) {
        if r["Type"] == "AWS::SQS::Queue"
            && !watched(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                &json!({"Fn::GetAtt": [id, "QueueName"]}),
            )
        {
            problems.push(format!("no alarm on messages visible in {id}"));
        }
    }
    if !watched(
        "AWS/Lambda",
        "IteratorAge",
        &json!({"Ref": "KinesisToDynamoDbFunction"}),
    ) {
        problems.push("no IteratorAge alarm".into());
    }
    let custom = json!({"Ref": "MetricsNamespace"});
    for (name, metric) in [
        ("kinesis-to-dynamodb", "Rejected"),
        ("cfn-responder", "AnswersFailed"),
        ("cfn-responder", "PutRejected"),
        ("transcode-launcher", "JobsFailed"),
        ("transcode-launcher", "WorkersFailed"),
        ("rds-log-rotator", "TargetsFailed"),
        ("rds-log-rotator", "Warnings"),
        ("snapshot-copier", "Errors"),
        ("snapshot-copier", "Deferred"),
        ("snapshot-copier", "RetriedAfterError"),
    ] {
        let found = alarms.iter().any(|(_, a)| {
            let m = metric_of(a);
            m["Namespace"] == custom
                && m["MetricName"] == metric
                && m["Dimensions"][1]["Value"] == name
        });
        if !found {
            problems.push(format!("no alarm on {name}'s {metric}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Whether CloudFormation's AllowedPattern (a whole-value match) accepts it.
fn pattern_accepts(pattern: &str, value: &str) -> bool {
    let output = std::process::Command::new(venv_tool("python"))
        .args([
            "-c",
            "import re, sys; sys.exit(0 if re.fullmatch(sys.argv[1], sys.argv[2]) else 1)",
            pattern,
            value,
        ])
        .output()
        .expect("the .venv python runs");
    output.status.success()
}

fn group_of<'a>(template: &'a Value, param: &str) -> &'a str {
    template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["Parameters"].as_array().unwrap().contains(&json!(param)))
        .and_then(|g| g["Label"]["default"].as_str())
        .unwrap_or_else(|| panic!("{param} is in no parameter group"))
}

/// Custom metrics that count events: each one already needs action when
/// it is counted, so the OK a period later (no new ones) would mislead.
const EVENT_COUNTS: [&str; 10] = [
    "AnswersFailed",
    "PutRejected",
    "Rejected",
    "Failed",
    "JobsFailed",
    "WorkersFailed",
    "TargetsFailed",
    "Warnings",
    "Errors",
    "ReconcileErrors",
];

/// Custom metrics whose alarm is a state that clears by itself (a backlog
/// drained), so its OK is news.
const STATE_METRICS: [&str; 2] = ["Deferred", "RetriedAfterError"];

#[test]
fn alarms_say_ok_only_when_the_state_they_watch_is_over() {
    let template = sam_template();
    let topic =
        json!([{"Fn::If": ["AlarmTopicGiven", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmTopic"}]}]);
    let mut problems = Vec::new();
    for (id, alarm) in resources(&template)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
    {
        let p = &alarm["Properties"];
        let namespace = &p["Namespace"];
        let metric = p["MetricName"].as_str().unwrap_or_default();
        let event_count = if namespace == &json!({"Ref": "MetricsNamespace"}) {
            if !EVENT_COUNTS.contains(&metric) && !STATE_METRICS.contains(&metric) {
                problems.push(format!(
                    "{id}: {metric} is neither an event count nor a state"
                ));
            }
            EVENT_COUNTS.contains(&metric)
        } else {
            // AWS/Lambda Errors and Throttles, IteratorAge, queue depth: the
            // OK says the function recovered or the queue drained.
            false
        };
        match (event_count, p.get("OKActions")) {
            (true, Some(ok)) => problems.push(format!("{id} counts events but sends OK to {ok}")),
            (false, ok) if ok != Some(&topic) => {
                problems.push(format!("{id} watches a state but its OK goes to {ok:?}"))
            }
            _ => {}
        }
        // SQS stops sending ApproximateNumberOfMessagesVisible for a queue
        // inactive for about six hours, while its messages still wait:
        // missing data must keep the last state, not turn it OK.
        if namespace == "AWS/SQS" && p["TreatMissingData"] != "ignore" {
            problems.push(format!(
                "{id}: queue depth with TreatMissingData {}",
                p["TreatMissingData"]
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_alarm_topic_is_an_sns_arn_and_only_a_created_one_gets_the_email() {
    let template = sam_template();
    let pattern = template["Parameters"]["AlarmTopicArn"]["AllowedPattern"]
        .as_str()
        .expect("AlarmTopicArn has an AllowedPattern");
    for good in [
        "",
        "arn:aws:sns:us-east-1:111122223333:ops",
        "arn:aws-us-gov:sns:us-gov-west-1:111122223333:ops-alarms_1",
    ] {
        assert!(pattern_accepts(pattern, good), "{pattern} refuses {good:?}");
    }
    for bad in [
        "ops",
        "arn:aws:sqs:us-east-1:111122223333:ops",
        "arn:aws:sns:us-east-1:111122223333:",
        " arn:aws:sns:us-east-1:111122223333:ops",
    ] {
        assert!(!pattern_accepts(pattern, bad), "{pattern} accepts {bad:?}");
    }
    let mut params = full_params(&template);
    params.insert(
        "AlarmTopicArn".into(),
        "arn:aws:sns:us-east-1:111122223333:ops".into(),
    );
    let resolver = Resolver {
        template: &template,
        params: &params,
    };
    assert!(
        !resolver.condition("SubscribeAlarmEmail"),
        "AlarmEmail would be subscribed to a topic the stack does not own"
    );
    params.insert("AlarmTopicArn".into(), String::new());
    let resolver = Resolver {
        template: &template,
        params: &params,
    };
    assert!(resolver.condition("SubscribeAlarmEmail"));
}

#[test]
fn an_ses_identity_needs_cfn_responder_and_ses_bounce_handler() {
    let template = sam_template();
    let full = full_params(&template);
    let with = |on: &[usize], identity: &str| {
        let mut params = full.clone();
        for (i, (param, _, _)) in FUNCTIONS.iter().enumerate() {
            let value = if on.contains(&i) { "true" } else { "false" };
            params.insert(param.to_string(), value.into());
        }
        params.insert("SesIdentity".into(), identity.into());
        broken_rules(&template, &params)
    };
    assert_eq!(with(&[0, 2], "example.com"), Vec::<String>::new());
    assert_eq!(with(&[2], ""), Vec::<String>::new());
    assert_eq!(with(&[0], ""), Vec::<String>::new());
    for on in [&[2][..], &[0], &[1, 3]] {
        let broken = with(on, "example.com");
        assert_eq!(broken.len(), 1, "{on:?}: {broken:?}");
        for named in [
            "SesIdentity",
            "DeployCfnResponder",
            "DeploySesBounceHandler",
        ] {
            assert!(broken[0].contains(named), "{on:?}: {broken:?}");
        }
    }
}

#[test]
fn an_existing_stream_with_a_customer_managed_key_can_be_read() {
    let template = sam_template();
    let param = &template["Parameters"]["ExistingStreamKmsKeyArn"];
    assert_eq!(param["Default"], "", "{param}");
    assert_eq!(
        group_of(&template, "ExistingStreamKmsKeyArn"),
        "kinesis-to-dynamodb"
    );
    let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let pattern = param["AllowedPattern"].as_str().unwrap_or(".*");
    assert!(pattern_accepts(pattern, key) && pattern_accepts(pattern, ""));
    assert!(!pattern_accepts(pattern, "alias/orders") || pattern == ".*");
    let kms_statements = |params: &Params| -> Vec<Value> {
        let resolver = Resolver {
            template: &template,
            params,
        };
        let function = resolver
            .resolve(&resources(&template)["KinesisToDynamoDbFunction"]["Properties"])
            .unwrap();
        function["Policies"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["Statement"].as_array().cloned().unwrap_or_default())
            .filter(|s| s.to_string().contains("kms:"))
            .collect()
    };
    let mut params = with_functions(&full_params(&template), &[1]);
    params.insert(
        "ExistingStreamArn".into(),
        "arn:aws:kinesis:us-east-1:111122223333:stream/orders".into(),
    );
    assert_eq!(kms_statements(&params), Vec::<Value>::new());
    params.insert("ExistingStreamKmsKeyArn".into(), key.into());
    let statements = kms_statements(&params);
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert_eq!(statements[0]["Action"], "kms:Decrypt");
    assert_eq!(
        statements[0]["Resource"],
        json!({"Ref": "ExistingStreamKmsKeyArn"})
    );
    assert_eq!(broken_rules(&template, &params), Vec::<String>::new());
    // A key without the stream it encrypts is a mistake, not a no-op.
    params.insert("ExistingStreamArn".into(), String::new());
    assert_eq!(broken_rules(&template, &params).len(), 1);
}

#[test]
fn the_mapping_starts_where_the_kinesis_starting_position_says() {
    let template = sam_template();
    let param = &template["Parameters"]["KinesisStartingPosition"];
    assert_eq!(param["Default"], "TRIM_HORIZON", "{param}");
    assert_eq!(param["AllowedValues"], json!(["TRIM_HORIZON", "LATEST"]));
    assert_eq!(
        group_of(&template, "KinesisStartingPosition"),
        "kinesis-to-dynamodb"
    );
    assert_eq!(
        resources(&template)["KinesisToDynamoDbMapping"]["Properties"]["StartingPosition"],
        json!({"Ref": "KinesisStartingPosition"})
    );
}

#[test]
fn dashboard_queue_depths_have_their_own_axis() {
    let template = sam_template();
    let all: Vec<usize> = (0..FUNCTIONS.len()).collect();
    let params = with_functions(&full_params(&template), &all);
    let outcome = deploy(&template, &params);
    let body = &outcome.resolved["Resources"]["SuiteDashboard"]["Properties"]["DashboardBody"];
    let dashboard: Value = serde_json::from_str(&render(body)).unwrap();
    let mut problems = Vec::new();
    for widget in dashboard["widgets"].as_array().unwrap() {
        let title = widget["properties"]["title"].as_str().unwrap_or_default();
        let Some(metrics) = widget["properties"]["metrics"].as_array() else {
            continue;
        };
        let is_queue = |m: &Value| m[0] == "AWS/SQS";
        if !metrics.iter().any(is_queue) || metrics.iter().all(is_queue) {
            continue;
        }
        // Messages waiting next to milliseconds or counts: its own axis.
        for m in metrics {
            let options = m.as_array().unwrap().last().filter(|o| o.is_object());
            let right = options.is_some_and(|o| o["yAxis"] == "right");
            if right != is_queue(m) {
                problems.push(format!("{title}: {m} on the wrong axis"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

//! The launcher's IAM policy in template.yaml (read through cfn-lint's
//! decoder): RunInstances only from the worker launch template, with only
//! the overrides the launcher makes; everything else comes from the template.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use suite_tests::process::sam_template;
use transcode_launcher::event::ObjectCreated;
use transcode_launcher::job::{self, TAG_ATTEMPT};

fn statements(template: &Value) -> Vec<Value> {
    template["Resources"]["TranscodeLauncherFunction"]["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["Statement"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| match s.get("Fn::If") {
            // A conditional statement: either branch may be deployed.
            Some(branches) => branches.as_array().unwrap()[1..]
                .iter()
                .filter(|b| b.get("Ref") != Some(&json!("AWS::NoValue")))
                .cloned()
                .collect(),
            None => vec![s],
        })
        .collect()
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

fn actions(statement: &Value) -> Vec<String> {
    as_list(&statement["Action"])
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// The text of a resource: its Sub string (or the ref'd name).
fn text(v: &Value) -> String {
    match (v, v.get("Fn::Sub")) {
        (Value::String(s), _) => s.clone(),
        (_, Some(Value::String(s))) => s.clone(),
        (other, _) => other.to_string(),
    }
}

const TEMPLATE_ARN: &str = "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:launch-template/${TranscodeWorkerLaunchTemplate}";

/// The RunInstances statement covering the resource type (`instance/`...).
fn run_instances_on<'a>(statements: &'a [Value], kind: &str) -> Vec<&'a Value> {
    statements
        .iter()
        .filter(|s| actions(s).iter().any(|a| a == "ec2:RunInstances"))
        .filter(|s| {
            as_list(&s["Resource"])
                .iter()
                .any(|r| text(r).contains(&format!(":{kind}")))
        })
        .collect()
}

#[test]
fn run_instances_is_scoped_to_the_worker_template_and_its_settings() {
    let template = sam_template();
    let statements = statements(&template);
    let run: Vec<&Value> = statements
        .iter()
        .filter(|s| actions(s).iter().any(|a| a == "ec2:RunInstances"))
        .collect();
    assert!(!run.is_empty());
    for statement in &run {
        assert_eq!(actions(statement), ["ec2:RunInstances"], "{statement}");
        for resource in as_list(&statement["Resource"]) {
            let resource = text(&resource);
            assert!(!resource.ends_with(":*") && resource != "*", "{resource}");
            if resource.contains(":launch-template/") {
                assert!(resource.contains(TEMPLATE_ARN), "{resource}");
                continue;
            }
            // Every other resource only in a launch from the worker template.
            let condition = &statement["Condition"]["ArnEquals"]["ec2:LaunchTemplate"];
            assert!(text(condition).contains(TEMPLATE_ARN), "{statement}");
        }
    }

    // The AMI is the template's, exactly.
    let image = run_instances_on(&statements, "image/");
    assert_eq!(image.len(), 1, "{image:?}");
    let images: Vec<String> = as_list(&image[0]["Resource"]).iter().map(text).collect();
    assert!(
        images
            .iter()
            .filter(|r| r.contains(":image/"))
            .all(|r| r.ends_with(":image/${TranscodeWorkerAmi}")),
        "{images:?}"
    );
    assert_eq!(
        image[0]["Condition"]["Bool"]["ec2:IsLaunchTemplateResource"],
        "true"
    );

    // The instance: the template's profile, type, metadata options; the
    // market type the launcher asks for.
    let instance = run_instances_on(&statements, "instance/");
    assert_eq!(instance.len(), 1, "{instance:?}");
    let conditions = &instance[0]["Condition"];
    assert_eq!(
        conditions["ArnEquals"]["ec2:InstanceProfile"],
        json!({"Fn::GetAtt": ["TranscodeWorkerInstanceProfile", "Arn"]}),
        "{conditions}"
    );
    assert_eq!(
        conditions["StringEquals"]["ec2:InstanceType"],
        json!({"Ref": "TranscodeInstanceType"})
    );
    assert_eq!(
        conditions["StringEquals"]["ec2:MetadataHttpTokens"],
        "required"
    );
    assert_eq!(conditions["StringEquals"]["ec2:Tenancy"], "default");
    assert!(
        conditions["StringEquals"]["ec2:InstanceMarketType"]
            .to_string()
            .contains("TranscodeUseSpotInstances"),
        "{conditions}"
    );

    // Volumes: encrypted gp3 of at most the template's size.
    let volume = run_instances_on(&statements, "volume/");
    assert_eq!(volume.len(), 1);
    let conditions = &volume[0]["Condition"];
    assert_eq!(conditions["Bool"]["ec2:Encrypted"], "true", "{conditions}");
    assert_eq!(conditions["StringEquals"]["ec2:VolumeType"], "gp3");
    assert_eq!(
        conditions["NumericLessThanEquals"]["ec2:VolumeSize"],
        json!({"Ref": "TranscodeVolumeSizeGiB"})
    );
}

#[test]
fn tags_only_at_launch_and_only_the_keys_the_launcher_sets() {
    let statements = statements(&sam_template());
    let tagging: Vec<&Value> = statements
        .iter()
        .filter(|s| actions(s).iter().any(|a| a == "ec2:CreateTags"))
        .collect();
    assert_eq!(tagging.len(), 1);
    let conditions = &tagging[0]["Condition"];
    assert_eq!(
        conditions["StringEquals"]["ec2:CreateAction"],
        "RunInstances"
    );
    let allowed: BTreeSet<String> =
        as_list(&conditions["ForAllValues:StringEquals"]["aws:TagKeys"])
            .iter()
            .map(text)
            .collect();
    let long = ObjectCreated {
        bucket: "b".repeat(300),
        key: "k".repeat(300),
        size: Some(1),
        etag: None,
        version_id: None,
        sequencer: None,
    };
    let mut sent: BTreeSet<String> = job::tags(&long, "tj-1")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    sent.insert(TAG_ATTEMPT.to_owned());
    assert_eq!(allowed, sent, "{conditions}");
}

#[test]
fn no_other_ec2_action_and_only_the_worker_role_is_passed() {
    let statements = statements(&sam_template());
    for statement in &statements {
        for action in actions(statement) {
            if action.starts_with("ec2:") {
                assert!(
                    [
                        "ec2:RunInstances",
                        "ec2:CreateTags",
                        "ec2:DescribeInstances"
                    ]
                    .contains(&action.as_str()),
                    "{statement}"
                );
            }
            if action == "iam:PassRole" {
                assert_eq!(
                    statement["Resource"],
                    json!({"Fn::GetAtt": ["TranscodeWorkerRole", "Arn"]})
                );
                assert_eq!(
                    statement["Condition"]["StringEquals"]["iam:PassedToService"],
                    "ec2.amazonaws.com"
                );
            }
            assert!(!action.contains('*'), "{statement}");
        }
    }
}

//! Each function's local environment: `[package.metadata.lambda.env]` in its
//! Cargo.toml, the section `cargo lambda watch` reads. `make demo`,
//! `make invoke` and env.json (`sam local invoke --env-vars`) take it from
//! here, so there is one copy.

use anyhow::{Context, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Variable name to value.
pub type Env = BTreeMap<String, String>;

/// A workspace package that has a local environment.
#[derive(Debug)]
pub struct LambdaPackage {
    pub name: String,
    /// Its binary targets (a SAM function names one in BuildProperties.Binary).
    pub bins: Vec<String>,
    pub env: Env,
    /// `[package.metadata.sam] env-json-leaves-out`: variables env.json must
    /// not give SAM, because their local values only hold together with a
    /// variable the template does not declare (which SAM drops).
    pub env_json_leaves_out: Vec<String>,
    /// `[package.metadata.sam] env-json-sets`: values env.json gives instead
    /// of the local ones, for a run against a real account (a dry run).
    pub env_json_sets: Env,
}

/// The packages of the workspace at `root` with a
/// `[package.metadata.lambda.env]`, read through
/// `cargo metadata --format-version 1 --no-deps`, sorted by name.
pub fn lambda_packages(root: &Path) -> anyhow::Result<Vec<LambdaPackage>> {
    let metadata = cargo_metadata(root)?;
    let mut packages = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        if let Some(package) = lambda_package(package)? {
            packages.push(package);
        }
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(packages)
}

fn cargo_metadata(root: &Path) -> anyhow::Result<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .with_context(|| format!("running {cargo} metadata"))?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).context("cargo metadata JSON")
}

/// One package of `cargo metadata`, if it has a local environment.
fn lambda_package(package: &Value) -> anyhow::Result<Option<LambdaPackage>> {
    let name = package["name"].as_str().unwrap_or_default().to_owned();
    let Some(table) = package["metadata"]["lambda"]["env"].as_object() else {
        return Ok(None);
    };
    let mut env = Env::new();
    for (key, value) in table {
        // cargo-lambda reads a map of strings, and the scripts read one
        // `KEY=VALUE` per line.
        match value.as_str() {
            Some(text) if !text.contains('\n') => env.insert(key.clone(), text.to_owned()),
            _ => bail!(
                "{name}: [package.metadata.lambda.env] {key} must be a one-line string, found {value}"
            ),
        };
    }
    let sam = &package["metadata"]["sam"];
    Ok(Some(LambdaPackage {
        bins: bin_targets(package),
        env,
        env_json_leaves_out: env_json_leaves_out(&name, sam)?,
        env_json_sets: env_json_sets(&name, sam)?,
        name,
    }))
}

fn bin_targets(package: &Value) -> Vec<String> {
    package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

fn env_json_leaves_out(name: &str, sam: &Value) -> anyhow::Result<Vec<String>> {
    sam["env-json-leaves-out"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            v.as_str().map(str::to_owned).with_context(|| {
                format!("{name}: [package.metadata.sam] env-json-leaves-out holds names, found {v}")
            })
        })
        .collect()
}

fn env_json_sets(name: &str, sam: &Value) -> anyhow::Result<Env> {
    let mut sets = Env::new();
    for (key, value) in sam["env-json-sets"].as_object().into_iter().flatten() {
        let Some(text) = value.as_str() else {
            bail!(
                "{name}: [package.metadata.sam] env-json-sets {key} must be a string, found {value}"
            );
        };
        sets.insert(key.clone(), text.to_owned());
    }
    Ok(sets)
}

/// env.json for `sam local invoke --env-vars`: for every function of
/// `template` (JSON, as `process::sam_template()` reads it), the local
/// environment of the package building its `BuildProperties.Binary`, kept to
/// the variables the template declares for it (Globals included): SAM passes
/// only those and silently drops the rest. Less the package's
/// `env-json-leaves-out`, plus its `env-json-sets` (each must be declared).
pub fn sam_env_json(template: &Value, packages: &[LambdaPackage]) -> anyhow::Result<Value> {
    let declared_globally = variable_names(&template["Globals"]["Function"]);
    let mut functions = serde_json::Map::new();
    for (logical_id, resource) in template["Resources"].as_object().into_iter().flatten() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .with_context(|| format!("{logical_id}: no Metadata.BuildProperties.Binary"))?;
        let package = packages
            .iter()
            .find(|p| p.bins.iter().any(|b| b == binary))
            .with_context(|| {
                format!("{logical_id}: binary {binary} has no [package.metadata.lambda.env]")
            })?;
        let declared = variable_names(&resource["Properties"]);
        let is_declared = |k: &str| declared.contains(&k) || declared_globally.contains(&k);
        if let Some(key) = package.env_json_sets.keys().find(|k| !is_declared(k)) {
            bail!(
                "{logical_id}: env-json-sets {key}, which the template does not declare (SAM would drop it)"
            );
        }
        let mut env: serde_json::Map<String, Value> = package
            .env
            .iter()
            .filter(|(k, _)| is_declared(k))
            .filter(|(k, _)| !package.env_json_leaves_out.contains(k))
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        for (k, v) in &package.env_json_sets {
            env.insert(k.clone(), Value::from(v.as_str()));
        }
        functions.insert(logical_id.clone(), Value::Object(env));
    }
    Ok(Value::Object(functions))
}

/// The names under `Environment.Variables` of a function's properties.
fn variable_names(properties: &Value) -> Vec<&str> {
    properties["Environment"]["Variables"]
        .as_object()
        .map(|vars| vars.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// env.json's text as `make env.json` writes it.
pub fn sam_env_json_text(template: &Value, packages: &[LambdaPackage]) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(&sam_env_json(template, packages)?)? + "\n")
}

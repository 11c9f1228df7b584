//! Settings from the environment, every problem reported at once.

use crate::aws::ec2::{LaunchSettings, TemplateRef};
use crate::job::{Locations, normalize_prefix};
use crate::launcher::Settings;
use crate::worker::{DEFAULT_PRESETS, DEFAULT_SEARCH_DIRS, PRESETS, WorkerSettings, preset};
use shared::config::{ConfigError, EnvReader};

pub const DEFAULT_SUFFIXES: &str = "mp4,mov,mkv,avi,webm,m4v";

/// Reads AWS_REGION; INPUT_BUCKET, INPUT_PREFIX (""), INPUT_SUFFIXES;
/// OUTPUT_BUCKET, OUTPUT_PREFIX ("transcoded"); LAUNCH_TEMPLATE_ID or
/// LAUNCH_TEMPLATE_NAME, LAUNCH_TEMPLATE_VERSION ($Default), INSTANCE_TYPE,
/// SPOT (false); JOBS_TABLE, MAX_RUNNING_JOBS (10), MAX_ATTEMPTS (3); and
/// for the worker PRESETS,
/// MAX_RUNTIME (seconds, 3600), FFMPEG_PATH, AWS_CLI_PATH and
/// WORKER_SEARCH_DIRS.
pub fn from_env(mut env: EnvReader) -> Result<(Settings, LaunchSettings), ConfigError> {
    let region: Option<String> = env.required("AWS_REGION");
    let input_bucket: Option<String> = env.required("INPUT_BUCKET");
    let input_prefix = normalize_prefix(&env.or_default("INPUT_PREFIX", String::new()));
    let suffixes: Vec<String> = env
        .or_default("INPUT_SUFFIXES", DEFAULT_SUFFIXES.to_owned())
        .split(',')
        .map(|s| s.trim().trim_start_matches('.').to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if suffixes.is_empty() {
        env.problem("INPUT_SUFFIXES must name at least one suffix, such as mp4");
    }
    let output_bucket: Option<String> = env.required("OUTPUT_BUCKET");
    let output_prefix = normalize_prefix(&env.or_default("OUTPUT_PREFIX", "transcoded".to_owned()));

    let template_id: Option<String> = env.optional("LAUNCH_TEMPLATE_ID");
    let template_name: Option<String> = env.optional("LAUNCH_TEMPLATE_NAME");
    let template = match (template_id, template_name) {
        (Some(id), None) => Some(TemplateRef::Id(id)),
        (None, Some(name)) => Some(TemplateRef::Name(name)),
        (Some(_), Some(_)) => {
            env.problem("LAUNCH_TEMPLATE_ID and LAUNCH_TEMPLATE_NAME are both set: set one");
            None
        }
        (None, None) => {
            env.problem(
                "LAUNCH_TEMPLATE_ID or LAUNCH_TEMPLATE_NAME is required but neither is set",
            );
            None
        }
    };
    let version = env.or_default("LAUNCH_TEMPLATE_VERSION", "$Default".to_owned());
    let instance_type: Option<String> = env.optional("INSTANCE_TYPE");
    let spot = env.flag("SPOT", false);

    let jobs_table: Option<String> = env.required("JOBS_TABLE");
    let max_running_jobs: usize = env.or_default("MAX_RUNNING_JOBS", 10);
    if max_running_jobs == 0 {
        env.problem("MAX_RUNNING_JOBS=0 is invalid: it must be at least 1");
    }
    let max_attempts: u32 = env.or_default("MAX_ATTEMPTS", 3);
    if max_attempts == 0 {
        env.problem("MAX_ATTEMPTS=0 is invalid: it must be at least 1");
    }
    let mut presets = Vec::new();
    for name in env
        .or_default("PRESETS", DEFAULT_PRESETS.to_owned())
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match preset(name) {
            Some(p) if !presets.contains(&p) => presets.push(p),
            Some(_) => env.problem(format!("PRESETS: {name:?} is listed twice")),
            None => {
                let known: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
                env.problem(format!(
                    "PRESETS: {name:?} is not a preset (known: {})",
                    known.join(", ")
                ))
            }
        }
    }
    if presets.is_empty() {
        env.problem("PRESETS must name at least one preset");
    }
    let max_runtime_secs: u64 = env.or_default("MAX_RUNTIME", 3600);
    if max_runtime_secs == 0 {
        env.problem("MAX_RUNTIME=0 is invalid: it is the ffmpeg watchdog in seconds");
    }
    let ffmpeg_path: Option<String> = env.optional("FFMPEG_PATH");
    let aws_cli_path: Option<String> = env.optional("AWS_CLI_PATH");
    let search_dirs = env.or_default("WORKER_SEARCH_DIRS", DEFAULT_SEARCH_DIRS.to_owned());
    for (name, path) in [
        ("FFMPEG_PATH", &ffmpeg_path),
        ("AWS_CLI_PATH", &aws_cli_path),
    ] {
        if path.as_ref().is_some_and(|p| !p.starts_with('/')) {
            env.problem(format!("{name} must be an absolute path"));
        }
    }
    if search_dirs.split(':').any(|d| !d.starts_with('/')) {
        env.problem("WORKER_SEARCH_DIRS must be absolute directories separated by ':'");
    }

    let locations = Locations {
        input_bucket: input_bucket.unwrap_or_default(),
        input_prefix,
        output_bucket: output_bucket.unwrap_or_default(),
        output_prefix,
        suffixes,
    };
    if !locations.input_bucket.is_empty() && locations.output_can_trigger_input() {
        env.problem(format!(
            "OUTPUT_BUCKET/OUTPUT_PREFIX s3://{}/{} overlaps INPUT_BUCKET/INPUT_PREFIX s3://{}/{}: \
             outputs would trigger the function again; use another bucket or disjoint prefixes",
            locations.output_bucket,
            locations.output_prefix,
            locations.input_bucket,
            locations.input_prefix
        ));
    }
    env.finish()?;
    let worker = WorkerSettings {
        region: region.expect("checked by finish"),
        output_bucket: locations.output_bucket.clone(),
        output_prefix: locations.output_prefix.clone(),
        ffmpeg_path,
        aws_cli_path,
        search_dirs,
        max_runtime_secs,
        presets,
    };
    Ok((
        Settings {
            locations,
            worker,
            max_running_jobs,
            max_attempts,
            jobs_table: jobs_table.expect("checked by finish"),
        },
        LaunchSettings {
            template: template.expect("checked by finish"),
            version,
            instance_type,
            spot,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AWS_REGION", "us-east-1"),
            ("INPUT_BUCKET", "in"),
            ("OUTPUT_BUCKET", "out"),
            ("LAUNCH_TEMPLATE_NAME", "transcode-worker"),
            ("JOBS_TABLE", "jobs"),
        ]
    }

    #[test]
    fn defaults() {
        let (settings, launch) = from_env(EnvReader::from_map(base())).unwrap();
        assert_eq!(settings.locations.suffixes.len(), 6);
        assert_eq!(settings.locations.output_prefix, "transcoded/");
        assert_eq!(settings.worker.presets.len(), 2);
        assert_eq!(settings.max_running_jobs, 10);
        assert_eq!(settings.max_attempts, 3);
        assert_eq!(settings.jobs_table, "jobs");
        assert_eq!(launch.version, "$Default");
        assert_eq!(
            launch.template,
            TemplateRef::Name("transcode-worker".into())
        );
    }

    #[test]
    fn a_loop_is_refused_at_init() {
        let mut env = base();
        env.push(("OUTPUT_BUCKET", "in"));
        env.push(("OUTPUT_PREFIX", ""));
        let error = from_env(EnvReader::from_map(env)).unwrap_err().to_string();
        assert!(
            error.contains("would trigger the function again"),
            "{error}"
        );

        let mut env = base();
        env.push(("OUTPUT_BUCKET", "in"));
        env.push(("INPUT_PREFIX", "uploads"));
        assert!(from_env(EnvReader::from_map(env)).is_ok());
    }

    #[test]
    fn every_problem_is_named() {
        let problems = from_env(EnvReader::from_map([
            ("LAUNCH_TEMPLATE_ID", "lt-1"),
            ("LAUNCH_TEMPLATE_NAME", "x"),
            ("PRESETS", "mp4-720p,gif"),
            ("MAX_RUNNING_JOBS", "0"),
            ("MAX_ATTEMPTS", "0"),
            ("FFMPEG_PATH", "ffmpeg"),
        ]))
        .unwrap_err()
        .to_string();
        for name in [
            "AWS_REGION",
            "INPUT_BUCKET",
            "OUTPUT_BUCKET",
            "LAUNCH_TEMPLATE_ID and LAUNCH_TEMPLATE_NAME",
            "\"gif\"",
            "MAX_RUNNING_JOBS",
            "MAX_ATTEMPTS",
            "JOBS_TABLE",
            "FFMPEG_PATH",
        ] {
            assert!(problems.contains(name), "{name}: {problems}");
        }
    }
}

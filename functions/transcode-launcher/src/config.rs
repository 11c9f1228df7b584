//! The function's configuration from the environment, every problem
//! reported at once.

use crate::job::{Locations, normalize_prefix};
use crate::launcher::Settings;
use crate::worker::{
    DEFAULT_PRESETS, DEFAULT_SEARCH_DIRS, PRESETS, Preset, WorkerSettings, preset,
};
use shared::config::{ConfigError, EnvReader, split_list};

pub const DEFAULT_SUFFIXES: &str = "mp4,mov,mkv,avi,webm,m4v";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// What the launcher decides with: locations, the worker, capacity.
    pub launcher: Settings,
    /// How every worker is launched (the EC2 adapter's settings).
    pub launch: LaunchSettings,
}

/// The launch template, by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateRef {
    Id(String),
    Name(String),
}

/// How every worker is launched; the template holds the rest (AMI, role,
/// network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSettings {
    pub template: TemplateRef,
    /// A number, `$Default` or `$Latest`.
    pub version: String,
    pub instance_type: Option<String>,
    pub spot: bool,
}

/// Every default, once. Buckets, the region, the jobs table and the launch
/// template have none: they are required (empty here).
impl Default for Config {
    fn default() -> Self {
        let output_prefix = normalize_prefix("transcoded");
        Config {
            launcher: Settings {
                locations: Locations {
                    input_bucket: String::new(),
                    input_prefix: String::new(),
                    output_bucket: String::new(),
                    output_prefix: output_prefix.clone(),
                    suffixes: split_list(DEFAULT_SUFFIXES),
                },
                worker: WorkerSettings {
                    region: String::new(),
                    output_bucket: String::new(),
                    output_prefix,
                    ffmpeg_path: None,
                    aws_cli_path: None,
                    search_dirs: DEFAULT_SEARCH_DIRS.to_owned(),
                    max_runtime_secs: 3600,
                    presets: split_list(DEFAULT_PRESETS)
                        .iter()
                        .filter_map(|name| preset(name))
                        .collect(),
                },
                max_running_jobs: 10,
                max_attempts: 3,
                jobs_table: String::new(),
            },
            launch: LaunchSettings {
                template: TemplateRef::Name(String::new()),
                version: "$Default".to_owned(),
                instance_type: None,
                spot: false,
            },
        }
    }
}

impl Config {
    /// Reads AWS_REGION; INPUT_BUCKET, INPUT_PREFIX (""), INPUT_SUFFIXES;
    /// OUTPUT_BUCKET, OUTPUT_PREFIX ("transcoded"); LAUNCH_TEMPLATE_ID or
    /// LAUNCH_TEMPLATE_NAME, LAUNCH_TEMPLATE_VERSION ($Default), INSTANCE_TYPE,
    /// SPOT (false); JOBS_TABLE, MAX_RUNNING_JOBS (10), MAX_ATTEMPTS (3); and
    /// for the worker PRESETS,
    /// MAX_RUNTIME (seconds, 3600), FFMPEG_PATH, AWS_CLI_PATH and
    /// WORKER_SEARCH_DIRS.
    pub fn from_env(mut env: EnvReader) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let region: Option<String> = env.required("AWS_REGION");
        let locations = read_locations(&mut env, defaults.launcher.locations);
        let template = read_template(&mut env);
        let launch = read_launch(&mut env, defaults.launch);
        let jobs_table: Option<String> = env.required("JOBS_TABLE");
        let max_running_jobs =
            env.at_least_one("MAX_RUNNING_JOBS", defaults.launcher.max_running_jobs);
        let max_attempts = env.at_least_one("MAX_ATTEMPTS", defaults.launcher.max_attempts);
        let worker = read_worker(&mut env, defaults.launcher.worker);
        check_no_loop(&mut env, &locations);
        env.finish()?;
        let worker = WorkerSettings {
            region: region.expect("checked by finish"),
            output_bucket: locations.output_bucket.clone(),
            output_prefix: locations.output_prefix.clone(),
            ..worker
        };
        Ok(Config {
            launcher: Settings {
                locations,
                worker,
                max_running_jobs,
                max_attempts,
                jobs_table: jobs_table.expect("checked by finish"),
            },
            launch: LaunchSettings {
                template: template.expect("checked by finish"),
                ..launch
            },
        })
    }
}

/// INPUT_BUCKET, INPUT_PREFIX, INPUT_SUFFIXES, OUTPUT_BUCKET, OUTPUT_PREFIX.
fn read_locations(env: &mut EnvReader, defaults: Locations) -> Locations {
    let input_bucket: Option<String> = env.required("INPUT_BUCKET");
    let input_prefix = normalize_prefix(&env.or_default("INPUT_PREFIX", defaults.input_prefix));
    let suffixes = match env.optional::<String>("INPUT_SUFFIXES") {
        Some(raw) => suffixes(&raw),
        None => defaults.suffixes,
    };
    if suffixes.is_empty() {
        env.problem("INPUT_SUFFIXES must name at least one suffix, such as mp4");
    }
    let output_bucket: Option<String> = env.required("OUTPUT_BUCKET");
    let output_prefix = normalize_prefix(&env.or_default("OUTPUT_PREFIX", defaults.output_prefix));
    Locations {
        input_bucket: input_bucket.unwrap_or_default(),
        input_prefix,
        output_bucket: output_bucket.unwrap_or_default(),
        output_prefix,
        suffixes,
    }
}

/// "mp4, .MOV" -> ["mp4", "mov"]: lowercase, without the dot.
fn suffixes(raw: &str) -> Vec<String> {
    split_list(raw)
        .iter()
        .map(|s| s.trim_start_matches('.').to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// LAUNCH_TEMPLATE_ID or LAUNCH_TEMPLATE_NAME: exactly one.
fn read_template(env: &mut EnvReader) -> Option<TemplateRef> {
    let template_id: Option<String> = env.optional("LAUNCH_TEMPLATE_ID");
    let template_name: Option<String> = env.optional("LAUNCH_TEMPLATE_NAME");
    match (template_id, template_name) {
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
    }
}

/// LAUNCH_TEMPLATE_VERSION, INSTANCE_TYPE, SPOT (the template comes from
/// [`read_template`]).
fn read_launch(env: &mut EnvReader, defaults: LaunchSettings) -> LaunchSettings {
    LaunchSettings {
        version: env.or_default("LAUNCH_TEMPLATE_VERSION", defaults.version),
        instance_type: env.optional("INSTANCE_TYPE").or(defaults.instance_type),
        spot: env.flag("SPOT", defaults.spot),
        ..defaults
    }
}

/// PRESETS, MAX_RUNTIME, FFMPEG_PATH, AWS_CLI_PATH, WORKER_SEARCH_DIRS (the
/// region and the output location are the caller's).
fn read_worker(env: &mut EnvReader, defaults: WorkerSettings) -> WorkerSettings {
    let presets = match env.optional::<String>("PRESETS") {
        Some(raw) => read_presets(env, &raw),
        None => defaults.presets.clone(),
    };
    if presets.is_empty() {
        env.problem("PRESETS must name at least one preset");
    }
    let max_runtime_secs = env.at_least_one_because(
        "MAX_RUNTIME",
        defaults.max_runtime_secs,
        "it is the ffmpeg watchdog in seconds",
    );
    let ffmpeg_path: Option<String> = env.optional("FFMPEG_PATH");
    let aws_cli_path: Option<String> = env.optional("AWS_CLI_PATH");
    let search_dirs = env.or_default("WORKER_SEARCH_DIRS", defaults.search_dirs.clone());
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
    WorkerSettings {
        ffmpeg_path,
        aws_cli_path,
        search_dirs,
        max_runtime_secs,
        presets,
        ..defaults
    }
}

/// PRESETS' names, each known and listed once.
fn read_presets(env: &mut EnvReader, raw: &str) -> Vec<&'static Preset> {
    let mut presets = Vec::new();
    for name in split_list(raw) {
        match preset(&name) {
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
    presets
}

/// Outputs must not land where uploads trigger the function.
fn check_no_loop(env: &mut EnvReader, locations: &Locations) {
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
        let Config {
            launcher: settings,
            launch,
        } = Config::from_env(EnvReader::from_map(base())).unwrap();
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

    /// The required values filled in, reading nothing else gives the
    /// defaults, so `Default` is the one place they are written.
    #[test]
    fn unset_variables_take_the_defaults() {
        let read = Config::from_env(EnvReader::from_map(base())).unwrap();
        let mut expected = Config::default();
        let launcher = &mut expected.launcher;
        launcher.locations.input_bucket = "in".into();
        launcher.locations.output_bucket = "out".into();
        launcher.worker.region = "us-east-1".into();
        launcher.worker.output_bucket = "out".into();
        launcher.jobs_table = "jobs".into();
        expected.launch.template = TemplateRef::Name("transcode-worker".into());
        assert_eq!(read, expected);
    }

    #[test]
    fn a_loop_is_refused_at_init() {
        let mut env = base();
        env.push(("OUTPUT_BUCKET", "in"));
        env.push(("OUTPUT_PREFIX", ""));
        let error = Config::from_env(EnvReader::from_map(env))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("would trigger the function again"),
            "{error}"
        );

        let mut env = base();
        env.push(("OUTPUT_BUCKET", "in"));
        env.push(("INPUT_PREFIX", "uploads"));
        assert!(Config::from_env(EnvReader::from_map(env)).is_ok());
    }

    /// Every problem, in the order read, with its exact text.
    #[test]
    fn problems_keep_their_order_and_texts() {
        let problems = Config::from_env(EnvReader::from_map([
            ("INPUT_SUFFIXES", " , ."),
            ("LAUNCH_TEMPLATE_ID", "lt-1"),
            ("LAUNCH_TEMPLATE_NAME", "x"),
            ("SPOT", "maybe"),
            ("MAX_RUNNING_JOBS", "0"),
            ("MAX_ATTEMPTS", "0"),
            ("PRESETS", "mp4-720p,gif,mp4-720p"),
            ("MAX_RUNTIME", "0"),
            ("FFMPEG_PATH", "ffmpeg"),
            ("AWS_CLI_PATH", "aws"),
            ("WORKER_SEARCH_DIRS", "/usr/bin:bin"),
        ]))
        .unwrap_err()
        .problems;
        assert_eq!(
            problems,
            [
                "AWS_REGION is required but not set",
                "INPUT_BUCKET is required but not set",
                "INPUT_SUFFIXES must name at least one suffix, such as mp4",
                "OUTPUT_BUCKET is required but not set",
                "LAUNCH_TEMPLATE_ID and LAUNCH_TEMPLATE_NAME are both set: set one",
                "SPOT=\"maybe\" is invalid: expected true or false",
                "JOBS_TABLE is required but not set",
                "MAX_RUNNING_JOBS=0 is invalid: it must be at least 1",
                "MAX_ATTEMPTS=0 is invalid: it must be at least 1",
                "PRESETS: \"gif\" is not a preset (known: mp4-1080p, mp4-720p, mp4-480p, thumbnail)",
                "PRESETS: \"mp4-720p\" is listed twice",
                "MAX_RUNTIME=0 is invalid: it is the ffmpeg watchdog in seconds",
                "FFMPEG_PATH must be an absolute path",
                "AWS_CLI_PATH must be an absolute path",
                "WORKER_SEARCH_DIRS must be absolute directories separated by ':'",
            ]
        );
        let mut env = base();
        env.extend([
            ("OUTPUT_BUCKET", "in"),
            ("PRESETS", ","),
            ("LAUNCH_TEMPLATE_NAME", ""),
        ]);
        let problems = Config::from_env(EnvReader::from_map(env))
            .unwrap_err()
            .problems;
        assert_eq!(
            problems,
            [
                "LAUNCH_TEMPLATE_ID or LAUNCH_TEMPLATE_NAME is required but neither is set",
                "PRESETS must name at least one preset",
                "OUTPUT_BUCKET/OUTPUT_PREFIX s3://in/transcoded/ overlaps INPUT_BUCKET/INPUT_PREFIX \
                 s3://in/: outputs would trigger the function again; use another bucket or disjoint prefixes",
            ]
        );
    }

    #[test]
    fn every_problem_is_named() {
        let problems = Config::from_env(EnvReader::from_map([
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

use lambda_runtime::service_fn;
use rds_log_rotator::FUNCTION_NAME;
use rds_log_rotator::aws::rds::RdsConnector;
use rds_log_rotator::aws::s3::S3Store;
use rds_log_rotator::config::Config;
use rds_log_rotator::handler::{self, FleetRotator};
use rds_log_rotator::rotator::Rotator;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, sdk) = shared::runtime::start(FUNCTION_NAME, Config::from_env).await;
    // Archive parts run to MAX_PART_MB: a longer attempt than small calls.
    let archive_policy = shared::aws::ClientPolicy {
        attempt_timeout: std::time::Duration::from_secs(60),
        operation_timeout: std::time::Duration::from_secs(180),
        ..shared::aws::ClientPolicy::default()
    };
    let s3 = rds_log_rotator::aws::s3::client(
        &shared::aws::with_policy(&sdk, archive_policy),
        config.s3_force_path_style,
    );
    let fleet = FleetRotator {
        rotator: Rotator {
            store: S3Store {
                client: s3,
                bucket: config.archive_bucket.clone(),
            },
            settings: config.rotator.clone(),
        },
        concurrency: config.concurrency,
        connector: RdsConnector {
            rds: aws_sdk_rds::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            sdk,
            config,
        },
    };
    let fleet = &fleet;
    lambda_runtime::run(service_fn(shared::runtime::observed(
        FUNCTION_NAME,
        move |event| handler::handle(fleet, event),
    )))
    .await
}

use lambda_runtime::service_fn;
use rds_log_rotator::aws::RdsConnector;
use rds_log_rotator::handler::{self, App};
use rds_log_rotator::rotator::Rotator;
use rds_log_rotator::s3::S3Store;
use shared::config::EnvReader;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::logging::init_tracing();
    let config = match rds_log_rotator::config::from_env(EnvReader::from_env()) {
        Ok(config) => config,
        Err(e) => shared::runtime::fail_init("InvalidConfiguration", &e).await,
    };
    let sdk = shared::aws::load_sdk_config().await;
    let s3 = rds_log_rotator::s3::client(&sdk, config.s3_force_path_style);
    let app = App {
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
    let app = &app;
    lambda_runtime::run(service_fn(move |event| handler::handle(app, event))).await
}

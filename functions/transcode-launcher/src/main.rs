use lambda_runtime::service_fn;
use transcode_launcher::aws::dynamodb::DynamoStore;
use transcode_launcher::aws::ec2::Ec2Fleet;
use transcode_launcher::aws::s3::S3Status;
use transcode_launcher::config::Config;
use transcode_launcher::launcher::Launcher;
use transcode_launcher::{FUNCTION_NAME, handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, sdk) = shared::runtime::start(FUNCTION_NAME, Config::from_env).await;
    // Endpoint overrides (moto, local runs) address buckets by path.
    let s3 = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    let settings = config.launcher;
    let launcher = Launcher::new(
        Ec2Fleet::new(aws_sdk_ec2::Client::new(&sdk), config.launch),
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            settings.jobs_table.clone(),
        ),
        S3Status::new(
            aws_sdk_s3::Client::from_conf(s3),
            settings.locations.output_bucket.clone(),
        ),
        settings,
    );
    let launcher = &launcher;
    lambda_runtime::run(service_fn(shared::runtime::observed(
        FUNCTION_NAME,
        move |event| handler::handle(launcher, event),
    )))
    .await
}

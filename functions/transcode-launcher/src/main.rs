use lambda_runtime::service_fn;
use shared::config::EnvReader;
use transcode_launcher::ec2::Ec2Fleet;
use transcode_launcher::launcher::Launcher;
use transcode_launcher::{config, handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::logging::init_tracing();
    let (settings, launch) = match config::from_env(EnvReader::from_env()) {
        Ok(settings) => settings,
        Err(e) => shared::runtime::fail_init("InvalidConfiguration", &e).await,
    };
    let sdk = shared::aws::load_sdk_config().await;
    let launcher = Launcher::new(
        Ec2Fleet::new(aws_sdk_ec2::Client::new(&sdk), launch),
        settings,
    );
    let launcher = &launcher;
    lambda_runtime::run(service_fn(move |event| handler::handle(launcher, event))).await
}

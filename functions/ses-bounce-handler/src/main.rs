use lambda_runtime::service_fn;
use ses_bounce_handler::account::{Account, Disabled, SesV2};
use ses_bounce_handler::config::Config;
use ses_bounce_handler::handler;
use ses_bounce_handler::processor::{Processor, Settings, SystemClock};
use ses_bounce_handler::store::DynamoStore;
use shared::config::EnvReader;

/// The function's name in logs (`service`) and metrics (`Function`).
const FUNCTION_NAME: &str = "ses-bounce-handler";

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::logging::init_for(FUNCTION_NAME);
    let config = match Config::from_env(EnvReader::from_env()) {
        Ok(config) => config,
        Err(e) => shared::runtime::fail_init("InvalidConfiguration", &e).await,
    };
    let sdk = shared::aws::load_sdk_config().await;
    let account = if config.account_suppression {
        Account::SesV2(SesV2(aws_sdk_sesv2::Client::new(&sdk)))
    } else {
        Account::Disabled(Disabled)
    };
    let processor = Processor {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table),
        account,
        clock: SystemClock,
        settings: Settings {
            rules: config.rules,
            escalation: config.escalation,
        },
    };
    let processor = &processor;
    lambda_runtime::run(service_fn(shared::runtime::observed(
        FUNCTION_NAME,
        move |event| handler::handle(processor, event),
    )))
    .await
}

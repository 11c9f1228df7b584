use lambda_runtime::service_fn;
use ses_bounce_handler::FUNCTION_NAME;
use ses_bounce_handler::aws::dynamodb::DynamoStore;
use ses_bounce_handler::aws::sesv2::SesV2;
use ses_bounce_handler::config::Config;
use ses_bounce_handler::fallback::{Account, Disabled, SystemClock};
use ses_bounce_handler::handler;
use ses_bounce_handler::processor::Processor;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, sdk) = shared::runtime::start(FUNCTION_NAME, Config::from_env).await;
    let account = if config.account_suppression {
        Account::SesV2(SesV2(aws_sdk_sesv2::Client::new(&sdk)))
    } else {
        Account::Disabled(Disabled)
    };
    let processor = Processor::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table),
        account,
        SystemClock,
        config.settings(),
    );
    let processor = &processor;
    lambda_runtime::run(service_fn(shared::runtime::observed(
        FUNCTION_NAME,
        move |event| handler::handle(processor, event),
    )))
    .await
}

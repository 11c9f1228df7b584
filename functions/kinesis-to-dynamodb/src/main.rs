use kinesis_to_dynamodb::FUNCTION_NAME;
use kinesis_to_dynamodb::aws::dynamodb::DynamoTable;
use kinesis_to_dynamodb::config::Config;
use kinesis_to_dynamodb::handler;
use lambda_runtime::service_fn;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kinesis_to_dynamodb::malloc::keep_large_buffers_out_of_the_heap();
    let (config, sdk) = shared::runtime::start(FUNCTION_NAME, Config::from_env).await;
    let table = DynamoTable::from_sdk(&sdk);
    let (table, config) = (&table, &config);
    lambda_runtime::run(service_fn(shared::runtime::observed(
        FUNCTION_NAME,
        move |event| handler::handle(table, config, event),
    )))
    .await
}

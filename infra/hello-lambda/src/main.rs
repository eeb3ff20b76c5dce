//! Hello world on `lambda_runtime`, built with the functions' release profile: it
//! answers every invocation with its payload. It is never deployed; it is the baseline
//! that `orderflow-dev footprint` sets every function's binary size and init time against.

use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, Error>(event.payload)
    }))
    .await
}

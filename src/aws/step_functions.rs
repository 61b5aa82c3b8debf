//! Step Functions: reports a request's end, and a heartbeat on each follow-up check, to the
//! task token a runbook passed (CONTRACT section 8). What is sent is decided by
//! [`crate::callback`]; this adapter sends it and sorts Step Functions' answers into final
//! refusals and failures that are retried.

use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::command::TaskToken;
use crate::deadline;
use crate::ports::{CallbackError, DependencyError, TaskCallbacks};

const SERVICE: &str = "Step Functions";

/// The errors that mean the token will never accept a callback again: the task ended (or
/// never existed), the token is not one, or what was sent can never be accepted.
const FINAL_REFUSALS: [&str; 4] = [
    "TaskDoesNotExist",
    "TaskTimedOut",
    "InvalidToken",
    "InvalidOutput",
];

/// The task callbacks, through the AWS SDK (`AWS_ENDPOINT_URL_SFN` overrides the endpoint, as
/// `AWS_ENDPOINT_URL` does for every service).
#[derive(Clone, Debug)]
pub struct StepFunctionsCallbacks {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsCallbacks {
    pub fn new(config: &aws_config::SdkConfig) -> StepFunctionsCallbacks {
        StepFunctionsCallbacks {
            client: aws_sdk_sfn::Client::new(config),
        }
    }
}

impl TaskCallbacks for StepFunctionsCallbacks {
    async fn success(&self, token: &TaskToken, output: &str) -> Result<(), CallbackError> {
        let request = self
            .client
            .send_task_success()
            .task_token(token.as_secret_str())
            .output(output);
        let send = async { request.send().await.map(|_| ()) };
        sent("SendTaskSuccess", token, send).await
    }

    async fn failure(
        &self,
        token: &TaskToken,
        error: &str,
        cause: &str,
    ) -> Result<(), CallbackError> {
        let request = self
            .client
            .send_task_failure()
            .task_token(token.as_secret_str())
            .error(error)
            .cause(cause);
        let send = async { request.send().await.map(|_| ()) };
        sent("SendTaskFailure", token, send).await
    }

    async fn heartbeat(&self, token: &TaskToken) -> Result<(), CallbackError> {
        let request = self
            .client
            .send_task_heartbeat()
            .task_token(token.as_secret_str());
        let send = async { request.send().await.map(|_| ()) };
        sent("SendTaskHeartbeat", token, send).await
    }
}

/// Awaits one call within the deadline in force and sorts its failure: a final refusal, or a
/// dependency failure to retry. Messages name the token by its fingerprint only.
async fn sent<E, R>(
    action: &'static str,
    token: &TaskToken,
    call: impl Future<Output = Result<(), SdkError<E, R>>>,
) -> Result<(), CallbackError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // Boxed: an SDK request's future is large (see the DynamoDB adapter).
    let call = Box::pin(call);
    let answer = deadline::bounded(SERVICE, async { Ok(call.await) }).await?;
    let Err(error) = answer else {
        return Ok(());
    };
    Err(classify(action, token, &error))
}

fn classify<E, R>(action: &str, token: &TaskToken, error: &SdkError<E, R>) -> CallbackError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(service_error) = error.as_service_error() {
        let code = service_error.code().unwrap_or("unknown service error");
        // What Step Functions said; the whole `SdkError` would add the raw response.
        let message = service_error.message().unwrap_or("no message").to_owned();
        if FINAL_REFUSALS.contains(&code) {
            return CallbackError::Refused {
                code: code.to_owned(),
                message: format!("{action} to task token {token}: {message}"),
            };
        }
        let hint = match code {
            "AccessDeniedException" => {
                ": the function's role needs states:SendTaskSuccess, states:SendTaskFailure and states:SendTaskHeartbeat"
            }
            _ => "",
        };
        return CallbackError::Dependency(DependencyError::new(
            SERVICE,
            format!("{action} to task token {token} failed ({code}){hint}: {message}"),
        ));
    }
    let kind = match error {
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "dispatch failure, no response",
        SdkError::ResponseError(_) => "unreadable response",
        SdkError::ConstructionFailure(_) => "request not built",
        _ => "unknown error",
    };
    CallbackError::Dependency(DependencyError::new(
        SERVICE,
        format!(
            "{action} to task token {token} failed ({kind}): {}",
            DisplayErrorContext(error)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};

    #[test]
    fn the_callbacks_are_send_and_sync_and_so_are_their_futures() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let config = aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sfn::config::SharedCredentialsProvider::new(
                Credentials::new("AKIDEXAMPLE", "not-a-real-secret", None, None, "test"),
            ))
            .build();
        let callbacks = StepFunctionsCallbacks::new(&config);
        send_sync(&callbacks);
        let token = TaskToken::parse("AAAA-token").unwrap();
        send(callbacks.heartbeat(&token));
        send(callbacks.success(&token, "{}"));
        send(callbacks.failure(&token, "AtlasRestore.BROKEN", "{}"));
    }
}

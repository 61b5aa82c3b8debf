//! Secrets Manager: the Atlas credentials and the webhook signing secret, cached per warm
//! instance. Errors name the secret and the missing key, never a value.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::atlas_api::AtlasCredentials;
use crate::deadline;
use crate::ports::{DependencyError, Secrets, SigningSecrets};
use crate::redacted::Secret;

const SERVICE: &str = "Secrets Manager";

pub struct SecretsManagerSecrets {
    client: Client,
    atlas_secret_id: String,
    webhook_secret_id: Option<String>,
    cache_ttl: Duration,
    cache: Mutex<HashMap<String, (Secret, Instant)>>,
}

impl SecretsManagerSecrets {
    pub fn new(
        config: &aws_config::SdkConfig,
        atlas_secret_id: String,
        webhook_secret_id: Option<String>,
        cache_ttl: Duration,
    ) -> SecretsManagerSecrets {
        SecretsManagerSecrets {
            client: Client::new(config),
            atlas_secret_id,
            webhook_secret_id,
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The secret's text, from the cache while it is younger than the TTL; cut, the wait for
    /// the cache included, at the deadline in force ([`deadline::bounded`]).
    async fn fetch(&self, secret_id: &str, refresh: bool) -> Result<Secret, DependencyError> {
        deadline::bounded(SERVICE, self.fetch_unbounded(secret_id, refresh)).await
    }

    async fn fetch_unbounded(
        &self,
        secret_id: &str,
        refresh: bool,
    ) -> Result<Secret, DependencyError> {
        let mut cache = self.cache.lock().await;
        if !refresh
            && let Some((value, fetched_at)) = cache.get(secret_id)
            && fetched_at.elapsed() < self.cache_ttl
        {
            return Ok(value.clone());
        }
        // Boxed, and only on a miss: the SDK request's future is large, and held inline it would
        // make every caller's future as large, so that the `Box::pin` of each credential read
        // (`ports::CredentialSource`) copied it on every invocation, cache hits included.
        let value = Box::pin(self.get_secret_value(secret_id)).await?;
        cache.insert(secret_id.to_owned(), (value.clone(), Instant::now()));
        Ok(value)
    }

    /// One `GetSecretValue` of `secret_id`: its text, or an error naming the secret.
    async fn get_secret_value(&self, secret_id: &str) -> Result<Secret, DependencyError> {
        let answer = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|error| {
                let hint = match error.code() {
                    Some("ResourceNotFoundException") => {
                        ": no such secret; check the secret id in the configuration"
                    }
                    Some("AccessDeniedException") => {
                        ": the function's role may not read it (secretsmanager:GetSecretValue)"
                    }
                    Some("DecryptionFailure") => {
                        ": it could not be decrypted; the role needs kms:Decrypt on its key"
                    }
                    _ => "",
                };
                DependencyError::new(
                    SERVICE,
                    format!(
                        "reading secret {secret_id} failed{hint}: {}",
                        DisplayErrorContext(&error)
                    ),
                )
            })?;
        secret_text(secret_id, answer.secret_string(), answer.secret_binary())
    }
}

impl Secrets for SecretsManagerSecrets {
    async fn atlas_credentials(&self, refresh: bool) -> Result<AtlasCredentials, DependencyError> {
        let text = self.fetch(&self.atlas_secret_id, refresh).await?;
        parse_atlas_credentials(&self.atlas_secret_id, &text)
    }

    async fn webhook_signing_secrets(&self) -> Result<SigningSecrets, DependencyError> {
        let Some(secret_id) = &self.webhook_secret_id else {
            return Err(DependencyError::new(
                SERVICE,
                "WEBHOOK_SECRET_ID is not set, so webhooks cannot be verified",
            ));
        };
        let text = self.fetch(secret_id, false).await?;
        parse_signing_secrets(secret_id, &text)
    }
}

/// The secret's value as text: `SecretString`, else `SecretBinary` read as UTF-8, as the
/// Powertools parameters utility does with a JSON transform (`--secret-binary fileb://atlas.json`
/// stores the same JSON as bytes). Binary that is not UTF-8 is refused, naming the secret only.
fn secret_text(
    secret_id: &str,
    string: Option<&str>,
    binary: Option<&aws_sdk_secretsmanager::primitives::Blob>,
) -> Result<Secret, DependencyError> {
    if let Some(text) = string {
        return Ok(Secret::new(text));
    }
    let Some(binary) = binary else {
        return Err(DependencyError::new(
            SERVICE,
            format!("secret {secret_id} has no value (neither SecretString nor SecretBinary)"),
        ));
    };
    match std::str::from_utf8(binary.as_ref()) {
        Ok(text) => Ok(Secret::new(text)),
        Err(_) => Err(DependencyError::new(
            SERVICE,
            format!(
                "secret {secret_id} holds binary data that is not UTF-8 text; store it as JSON text (--secret-string)"
            ),
        )),
    }
}

/// `{"publicKey","privateKey"}` (Digest) or `{"clientId","clientSecret"}` (service account).
pub fn parse_atlas_credentials(
    secret_id: &str,
    text: &Secret,
) -> Result<AtlasCredentials, DependencyError> {
    let object = json_object(secret_id, text)?;
    let field = |name: &str| -> Result<String, DependencyError> {
        match object.get(name) {
            Some(Value::String(value)) if !value.is_empty() => Ok(value.clone()),
            Some(_) => Err(DependencyError::new(
                SERVICE,
                format!("secret {secret_id}: \"{name}\" must be a non-empty string"),
            )),
            None => Err(DependencyError::new(
                SERVICE,
                format!("secret {secret_id} has no \"{name}\""),
            )),
        }
    };
    if object.contains_key("publicKey") || object.contains_key("privateKey") {
        Ok(AtlasCredentials::ApiKey {
            public_key: field("publicKey")?,
            private_key: Secret::new(field("privateKey")?),
        })
    } else if object.contains_key("clientId") || object.contains_key("clientSecret") {
        Ok(AtlasCredentials::ServiceAccount {
            client_id: field("clientId")?,
            client_secret: Secret::new(field("clientSecret")?),
        })
    } else {
        Err(DependencyError::new(
            SERVICE,
            format!(
                "secret {secret_id} must hold {{\"publicKey\", \"privateKey\"}} or {{\"clientId\", \"clientSecret\"}}; it has {}",
                key_names(&object)
            ),
        ))
    }
}

/// A plain string, or `{"signingSecret", "previousSigningSecret"}` during a rotation.
pub fn parse_signing_secrets(
    secret_id: &str,
    text: &Secret,
) -> Result<SigningSecrets, DependencyError> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text.expose()) else {
        if text.expose().is_empty() {
            return Err(DependencyError::new(
                SERVICE,
                format!("secret {secret_id} is empty"),
            ));
        }
        return Ok(SigningSecrets {
            current: text.clone(),
            previous: None,
        });
    };
    let current = match object.get("signingSecret") {
        Some(Value::String(value)) if !value.is_empty() => Secret::new(value.as_str()),
        Some(_) => {
            return Err(DependencyError::new(
                SERVICE,
                format!("secret {secret_id}: \"signingSecret\" must be a non-empty string"),
            ));
        }
        None => {
            return Err(DependencyError::new(
                SERVICE,
                format!(
                    "secret {secret_id} is a JSON object without \"signingSecret\"; it has {}",
                    key_names(&object)
                ),
            ));
        }
    };
    let previous = match object.get("previousSigningSecret") {
        None | Some(Value::Null) => None,
        Some(Value::String(value)) if value.is_empty() => None,
        Some(Value::String(value)) => Some(Secret::new(value.as_str())),
        Some(_) => {
            return Err(DependencyError::new(
                SERVICE,
                format!("secret {secret_id}: \"previousSigningSecret\" must be a string"),
            ));
        }
    };
    Ok(SigningSecrets { current, previous })
}

fn json_object(secret_id: &str, text: &Secret) -> Result<Map<String, Value>, DependencyError> {
    match serde_json::from_str::<Value>(text.expose()) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(DependencyError::new(
            SERVICE,
            format!("secret {secret_id} is not a JSON object"),
        )),
    }
}

/// The names of an object's keys (never its values), for error messages.
fn key_names(object: &Map<String, Value>) -> String {
    if object.is_empty() {
        return "no keys".to_owned();
    }
    let names: Vec<String> = object
        .keys()
        .take(10)
        .map(|k| format!("{:?}", crate::command::json::shorten(k, 40)))
        .collect();
    format!("keys {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::new(text)
    }

    #[test]
    fn both_atlas_shapes_are_read() {
        assert_eq!(
            parse_atlas_credentials(
                "s",
                &secret(r#"{"publicKey": "pub", "privateKey": "priv"}"#)
            )
            .unwrap(),
            AtlasCredentials::ApiKey {
                public_key: "pub".into(),
                private_key: Secret::new("priv")
            }
        );
        assert_eq!(
            parse_atlas_credentials("s", &secret(r#"{"clientId": "id", "clientSecret": "cs"}"#))
                .unwrap(),
            AtlasCredentials::ServiceAccount {
                client_id: "id".into(),
                client_secret: Secret::new("cs")
            }
        );
    }

    #[test]
    fn a_missing_key_is_named_and_no_value_ever_appears() {
        let cases = [
            (r#"{"publicKey": "pub-VALUE"}"#, "has no \"privateKey\""),
            (r#"{"privateKey": "priv-VALUE"}"#, "has no \"publicKey\""),
            (r#"{"clientId": "id-VALUE"}"#, "has no \"clientSecret\""),
            (r#"{"clientSecret": "cs-VALUE"}"#, "has no \"clientId\""),
            (
                r#"{"user": "u-VALUE", "password": "p-VALUE"}"#,
                "keys \"password\", \"user\"",
            ),
            (
                r#"{"publicKey": "pub", "privateKey": 5}"#,
                "\"privateKey\" must be a non-empty string",
            ),
            ("not json priv-VALUE", "is not a JSON object"),
        ];
        for (text, expected) in cases {
            let error = parse_atlas_credentials("prod/atlas", &secret(text)).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains(expected) && message.contains("prod/atlas"),
                "{text}: {message}"
            );
            assert!(!message.contains("VALUE"), "no value in {message}");
        }
    }

    #[test]
    fn a_binary_secret_is_read_as_utf8_text_and_anything_else_is_refused_without_its_value() {
        use aws_sdk_secretsmanager::primitives::Blob;
        let json = Blob::new(br#"{"publicKey": "pub", "privateKey": "priv"}"#.to_vec());
        let text = secret_text("s", None, Some(&json)).unwrap();
        assert!(parse_atlas_credentials("s", &text).is_ok());
        assert_eq!(
            secret_text("s", Some("string wins"), Some(&json))
                .unwrap()
                .expose(),
            "string wins"
        );
        let raw = Blob::new(vec![0xff, 0xfe, b'V', b'A', b'L', b'U', b'E', 0x80]);
        let error = secret_text("prod/atlas", None, Some(&raw))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("prod/atlas") && error.contains("not UTF-8") && !error.contains("VALUE"),
            "{error}"
        );
        assert!(secret_text("s", None, None).is_err());
    }

    #[test]
    fn signing_secrets_as_a_string_or_during_rotation() {
        assert_eq!(
            parse_signing_secrets("w", &secret("plain-secret")).unwrap(),
            SigningSecrets {
                current: Secret::new("plain-secret"),
                previous: None
            }
        );
        assert_eq!(
            parse_signing_secrets(
                "w",
                &secret(r#"{"signingSecret": "new", "previousSigningSecret": "old"}"#)
            )
            .unwrap(),
            SigningSecrets {
                current: Secret::new("new"),
                previous: Some(Secret::new("old"))
            }
        );
        assert_eq!(
            parse_signing_secrets("w", &secret(r#"{"signingSecret": "new"}"#))
                .unwrap()
                .previous,
            None
        );
        let error = parse_signing_secrets("w", &secret(r#"{"secret": "x-VALUE"}"#))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("without \"signingSecret\"") && !error.contains("x-VALUE"),
            "{error}"
        );
        assert!(parse_signing_secrets("w", &secret("")).is_err());
    }
}

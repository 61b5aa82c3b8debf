//! The webhook's hand-off message on the work queue (CONTRACT section 2, "Queue hand-off"):
//! the exact signed body, its timestamp and signature, so the delivery verifies it again.
//! Pure: no I/O.

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::triggers::signature::SignatureHeaders;

/// One webhook command handed to the work queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandOffMessage {
    /// The body exactly as signed.
    pub body: Vec<u8>,
    pub headers: SignatureHeaders,
}

impl HandOffMessage {
    /// The message as sent. The body travels as base64: SQS refuses characters outside its
    /// set (U+FFFE and U+FFFF among them) that a JSON body may hold.
    pub fn to_json(&self) -> String {
        json!({
            "bodyBase64": base64::engine::general_purpose::STANDARD.encode(&self.body),
            "timestamp": self.headers.timestamp,
            "signature": self.headers.signature,
        })
        .to_string()
    }

    /// Reads a work-queue message body: `None` when it is no hand-off message (or its body
    /// does not decode). A plain `body` is read too, as messages queued before the body was
    /// carried as base64 have it.
    pub fn from_value(message: &Value) -> Option<HandOffMessage> {
        let text = |name: &str| message.get(name).and_then(Value::as_str);
        let body = match (text("bodyBase64"), text("body")) {
            (Some(encoded), _) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?,
            (None, Some(plain)) => plain.as_bytes().to_vec(),
            (None, None) => return None,
        };
        Some(HandOffMessage {
            body,
            headers: SignatureHeaders {
                timestamp: text("timestamp").map(str::to_owned),
                signature: text("signature").map(str::to_owned),
            },
        })
    }

    /// SHA-256 (hex) of the signed body: the `QUEUED` record keeps it, so a delivery whose
    /// command no longer validates can still show it is the one that record queued.
    pub fn digest(&self) -> String {
        body_digest(&self.body)
    }
}

/// SHA-256 (hex) of a webhook body.
pub fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> HandOffMessage {
        HandOffMessage {
            body: body.as_bytes().to_vec(),
            headers: SignatureHeaders {
                timestamp: Some("1795885575".into()),
                signature: Some("v0=ab".into()),
            },
        }
    }

    #[test]
    fn a_body_with_characters_sqs_refuses_travels_as_ascii_and_comes_back_whole() {
        let original = message("{\"reason\":\"\u{FFFE}\u{FFFF} noncharacters\"}");
        let sent = original.to_json();
        assert!(sent.is_ascii(), "{sent}");
        let value: Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(HandOffMessage::from_value(&value), Some(original));
    }

    #[test]
    fn a_message_queued_with_a_plain_body_is_still_read() {
        let value = json!({"body": "{}", "timestamp": "1795885575", "signature": "v0=ab"});
        assert_eq!(HandOffMessage::from_value(&value), Some(message("{}")));
        assert_eq!(HandOffMessage::from_value(&json!({"followUp": {}})), None);
        assert_eq!(
            HandOffMessage::from_value(&json!({"bodyBase64": "not base64!"})),
            None
        );
    }
}

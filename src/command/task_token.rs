//! `taskToken` (CONTRACT section 8): a Step Functions task token the request's end is reported
//! to. A bearer credential: whoever holds it can end the task, so it is never logged whole,
//! never published and never put in an outcome. Not part of the fingerprint.

use std::fmt;

use sha2::{Digest, Sha256};

use super::fields::{Fields, Problems};
use crate::outcome::ErrorCode;

/// A task token as Step Functions hands it out: 1-2048 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct TaskToken(String);

impl TaskToken {
    pub const MAX_CHARS: usize = 2048;

    pub fn parse(text: &str) -> Option<TaskToken> {
        let chars = text.chars().count();
        ((1..=Self::MAX_CHARS).contains(&chars) && !text.chars().any(char::is_control))
            .then(|| TaskToken(text.to_owned()))
    }

    /// The token itself, for the Step Functions call and the request's record only.
    pub fn as_secret_str(&self) -> &str {
        &self.0
    }

    /// A short id that tells two tokens apart in logs without revealing either: `sha256:` and
    /// the first 12 hex digits of its SHA-256.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

/// Reads the command's `taskToken`. A refused value is never echoed: it may still be someone's
/// token. `Err` when it was given but is invalid.
pub(super) fn read(fields: &Fields<'_>, problems: &mut Problems) -> Result<Option<TaskToken>, ()> {
    if !fields.has("taskToken") {
        return Ok(None);
    }
    let text = fields.string("taskToken", problems).ok_or(())?;
    match TaskToken::parse(text) {
        Some(token) => Ok(Some(token)),
        None => {
            problems.add(
                fields.pointer("taskToken"),
                ErrorCode::InvalidFormat,
                format!(
                    "\"taskToken\" must be a Step Functions task token: 1 to {} characters without control characters (pass \"$$.Task.Token\"); got {} characters",
                    TaskToken::MAX_CHARS,
                    text.chars().count()
                ),
            );
            Err(())
        }
    }
}

impl fmt::Debug for TaskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskToken({})", self.fingerprint())
    }
}

impl fmt::Display for TaskToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_token() {
        let token = TaskToken::parse("AQCEAAAAKgAAAAMAAAAAAAAAAeSecretPart").unwrap();
        for shown in [format!("{token:?}"), token.to_string()] {
            assert!(!shown.contains("SecretPart"), "{shown}");
            assert!(shown.contains("sha256:"), "{shown}");
        }
        assert_eq!(
            token.as_secret_str(),
            "AQCEAAAAKgAAAAMAAAAAAAAAAeSecretPart"
        );
    }

    #[test]
    fn length_and_control_characters_are_checked() {
        assert!(TaskToken::parse("").is_none());
        assert!(TaskToken::parse(&"a".repeat(2048)).is_some());
        assert!(TaskToken::parse(&"a".repeat(2049)).is_none());
        assert!(TaskToken::parse("a\nb").is_none());
    }
}

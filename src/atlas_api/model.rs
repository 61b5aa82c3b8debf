//! What Atlas answers, read leniently: unknown fields are kept, enum values stay open
//! (an unknown status is data, not an error).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A page of results (`links`, `results`, `totalCount`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(
    rename_all = "camelCase",
    bound(deserialize = "T: Deserialize<'de>", serialize = "T: Serialize")
)]
pub struct Page<T> {
    /// Required: a 2xx page without `results` is an unreadable answer, not an empty one.
    pub results: Vec<T>,
    #[serde(default)]
    pub total_count: Option<u64>,
}

/// A legacy restore job (`BackupRestoreJob`) as Atlas serves it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreJob {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// RFC 3339, as Atlas wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// `IN_PROGRESS`, `BROKEN`, `KILLED`, `FINISHED`, or a value Atlas adds later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<JobDelivery>,
    /// Every field not named above, kept as Atlas sent it.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDelivery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cluster_id: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A legacy backup snapshot (`BackupSnapshot`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub id: String,
    #[serde(default)]
    pub complete: Option<bool>,
    #[serde(default)]
    pub created: Option<BsonTimestamp>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A Cloud Backup snapshot (`DiskBackupReplicaSet`), as far as the runner needs it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudSnapshot {
    pub id: String,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    /// `queued`, `inProgress`, `completed`, `failed`, or a value Atlas adds later.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `ApiBSONTimestampView`: `increment` is a small counter in practice, whatever the schema says.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct BsonTimestamp {
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub increment: Option<i64>,
}

/// A cluster of a project, as far as the runner needs it (`id` and `name`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Cluster {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Atlas's error body, kept verbatim. A body that is not JSON (a proxy's page) is kept as
/// `reason` text.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(default)]
    pub error: Option<u16>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_request_detail: Option<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// How much of a non-JSON body is kept.
const MAX_TEXT_CHARS: usize = 2000;

impl ApiError {
    /// Reads an error body: Atlas's JSON shape, or the text of anything else.
    pub fn from_body(status: u16, body: &[u8]) -> ApiError {
        match serde_json::from_slice::<ApiError>(body) {
            Ok(error)
                if error.error.is_some()
                    || error.error_code.is_some()
                    || error.detail.is_some() =>
            {
                error
            }
            _ => ApiError {
                error: Some(status),
                reason: Some(
                    String::from_utf8_lossy(body)
                        .chars()
                        .take(MAX_TEXT_CHARS)
                        .collect(),
                ),
                ..ApiError::default()
            },
        }
    }

    /// A one-line description for messages.
    pub fn summary(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if let Some(code) = &self.error_code {
            parts.push(code);
        }
        if let Some(detail) = &self.detail {
            parts.push(detail);
        } else if let Some(reason) = &self.reason {
            parts.push(reason);
        }
        if parts.is_empty() {
            "no detail given".to_owned()
        } else {
            parts.join(": ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_and_status_values_are_kept() {
        let job: RestoreJob = serde_json::from_value(json!({
            "id": "a", "statusName": "SOMETHING_NEW", "pointInTime": true,
            "delivery": {"methodName": "HTTP", "statusName": "READY", "urlV2": "https://x"},
            "timestamp": {"date": "2026-11-28T10:00:00Z", "increment": 1}
        }))
        .unwrap();
        assert_eq!(job.status_name.as_deref(), Some("SOMETHING_NEW"));
        assert_eq!(job.other["pointInTime"], json!(true));
        assert_eq!(job.delivery.unwrap().other["urlV2"], json!("https://x"));
    }

    #[test]
    fn error_bodies_are_kept_verbatim_or_as_text() {
        let error = ApiError::from_body(400, br#"{"error":400,"errorCode":"INVALID_ATTRIBUTE","detail":"Invalid attribute x.","reason":"Bad Request","parameters":["x"]}"#);
        assert_eq!(error.error_code.as_deref(), Some("INVALID_ATTRIBUTE"));
        assert_eq!(error.summary(), "INVALID_ATTRIBUTE: Invalid attribute x.");
        let error = ApiError::from_body(502, b"<html>Bad Gateway</html>");
        assert_eq!(error.error, Some(502));
        assert_eq!(error.reason.as_deref(), Some("<html>Bad Gateway</html>"));
        assert_eq!(
            ApiError::from_body(500, b"{}").reason.as_deref(),
            Some("{}")
        );
    }
}

//! The schema helper itself must reject what Atlas would reject, or every schema test is hollow.
mod support;

use serde_json::json;
use support::schema::violations;

#[test]
fn a_minimal_legacy_body_is_valid() {
    let body =
        json!({"snapshotId": "5f1c6b1e2a9b4f3d8c7e6a5b", "delivery": {"methodName": "HTTP"}});
    assert_eq!(violations("BackupRestoreJob", &body), Vec::<String>::new());
}

#[test]
fn the_schema_catches_wrong_patterns_types_and_missing_delivery() {
    assert!(!violations("BackupRestoreJob", &json!({"snapshotId": "5F1C"})).is_empty());
    assert!(
        !violations(
            "BackupRestoreJob",
            &json!({"delivery": {"methodName": "DOWNLOAD"}})
        )
        .is_empty()
    );
    assert!(
        !violations(
            "BackupRestoreJob",
            &json!({"delivery": {"methodName": "HTTP"}, "oplogInc": 0})
        )
        .is_empty()
    );
    assert!(
        !violations(
            "BackupRestoreJob",
            &json!({"delivery": {"methodName": "AUTOMATED_RESTORE"}, "oplogTs": "2026-02-30T00:00:00Z"})
        )
        .is_empty()
    );
}

#[test]
fn nullable_fields_admit_null_and_api_error_requires_its_code() {
    assert!(
        violations(
            "ApiError",
            &json!({"error": 404, "errorCode": "X", "detail": null})
        )
        .is_empty()
    );
    assert!(!violations("ApiError", &json!({"error": 404})).is_empty());
}

//! Every body the runner can send validates against Atlas's `BackupRestoreJob`, the field
//! lists follow the OpenAPI definition, and the canonical command is stable.
mod support;

use atlas_restore_runner::command::{ObjectId, RestoreCommand, RestoreSpec};
use atlas_restore_runner::outcome::ErrorCode;
use serde_json::{Value, json};
use support::clock::now_with_millis as now;
use support::schema::violations;

const GROUP: &str = "5e2211c17a3e5a48f5497de3";
const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";

fn openapi() -> Value {
    serde_json::from_str(include_str!("fixtures/atlas/restore-api.openapi.json")).unwrap()
}

fn command(restore: Value, restore_point: Value) -> Value {
    json!({"groupId": GROUP, "clusterName": "orders", "restore": restore, "restorePoint": restore_point})
}

/// One command for every body shape the runner produces.
fn every_shape() -> Vec<(&'static str, Value)> {
    let automated = json!({"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP.to_uppercase(), "targetClusterName": "orders-drill"});
    let automated_by_id = json!({"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterId": SNAPSHOT});
    let pit = now().timestamp_millis() - 3_600_000;
    vec![
        (
            "snapshot, automated",
            command(
                json!({"snapshotId": SNAPSHOT.to_uppercase(), "delivery": automated}),
                Value::Null,
            ),
        ),
        (
            "snapshot, automated by id",
            command(
                json!({"snapshotId": SNAPSHOT, "delivery": automated_by_id}),
                Value::Null,
            ),
        ),
        (
            "checkpoint",
            command(
                json!({"checkpointId": SNAPSHOT, "delivery": automated}),
                Value::Null,
            ),
        ),
        (
            "oplog",
            command(
                json!({"oplogTs": "2026-11-28T10:00:00.5Z", "oplogInc": 3, "delivery": automated}),
                Value::Null,
            ),
        ),
        (
            "point in time",
            command(
                json!({"pointInTimeUTCMillis": pit, "delivery": automated}),
                Value::Null,
            ),
        ),
        (
            "minutesAgo",
            command(json!({"delivery": automated}), json!({"minutesAgo": 15})),
        ),
        (
            "latestSnapshot, automated",
            command(json!({"delivery": automated}), json!("latestSnapshot")),
        ),
        (
            "download",
            command(
                json!({"snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP"}}),
                Value::Null,
            ),
        ),
        (
            "download with options",
            command(
                json!({"snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP", "expirationHours": 4, "maxDownloads": 2}}),
                Value::Null,
            ),
        ),
        (
            "latestSnapshot, download",
            command(
                json!({"delivery": {"methodName": "HTTP"}}),
                json!("latestSnapshot"),
            ),
        ),
    ]
}

#[test]
fn every_body_validates_against_backup_restore_job() {
    let latest = ObjectId::parse(SNAPSHOT).unwrap();
    for (case, command) in every_shape() {
        let parsed =
            RestoreCommand::from_value(&command, now()).unwrap_or_else(|p| panic!("{case}: {p:?}"));
        let RestoreSpec::Legacy(spec) = &parsed.restore else {
            panic!("a legacy restore")
        };
        let body = spec.resolve(now(), Some(&latest)).unwrap().atlas_body();
        assert_eq!(
            violations("BackupRestoreJob", &body),
            Vec::<String>::new(),
            "{case}: {body}"
        );
        for pointer in [
            "/snapshotId",
            "/checkpointId",
            "/delivery/targetGroupId",
            "/delivery/targetClusterId",
        ] {
            if let Some(id) = body.pointer(pointer).and_then(Value::as_str) {
                assert_eq!(
                    id,
                    id.to_lowercase(),
                    "{case}: {pointer} is sent in lower case"
                );
            }
        }
    }
}

#[test]
fn bodies_are_exactly_what_was_asked_for() {
    let parsed = RestoreCommand::from_value(&every_shape()[0].1, now()).unwrap();
    let RestoreSpec::Legacy(spec) = &parsed.restore else {
        panic!("a legacy restore")
    };
    assert_eq!(
        spec.resolve(now(), None).unwrap().atlas_body(),
        json!({"snapshotId": SNAPSHOT, "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}})
    );
    let parsed = RestoreCommand::from_value(&every_shape()[8].1, now()).unwrap();
    let RestoreSpec::Legacy(spec) = &parsed.restore else {
        panic!("a legacy restore")
    };
    assert_eq!(
        spec.resolve(now(), None).unwrap().atlas_body(),
        json!({"snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP", "expirationHours": 4, "maxDownloads": 2}})
    );
}

/// The field lists in the code follow the OpenAPI definition: every read-only property is
/// refused as read-only, every writable one is known.
#[test]
fn read_only_and_writable_fields_follow_the_openapi_definition() {
    let spec = openapi();
    for (component, pointer) in [
        ("BackupRestoreJob", "/restore"),
        ("BackupRestoreJobDelivery", "/restore/delivery"),
    ] {
        let properties = spec["components"]["schemas"][component]["properties"]
            .as_object()
            .unwrap();
        for (name, property) in properties {
            let mut sample = every_shape()[0].1.clone();
            sample.pointer_mut(pointer).unwrap()[name] = json!("x");
            let problems = RestoreCommand::from_value(&sample, now())
                .err()
                .unwrap_or_default();
            let at = format!("{pointer}/{name}");
            let codes: Vec<ErrorCode> = problems
                .iter()
                .filter(|p| p.field == at)
                .map(|p| p.code)
                .collect();
            if property["readOnly"] == json!(true) {
                assert_eq!(
                    codes,
                    vec![ErrorCode::ReadOnlyField],
                    "{at} is read-only in the OpenAPI definition"
                );
            } else {
                assert!(
                    !codes.contains(&ErrorCode::UnknownField),
                    "{at} is writable in the OpenAPI definition: {codes:?}"
                );
            }
        }
    }
}

#[test]
fn the_canonical_command_normalises_ids_fills_defaults_and_ignores_metadata() {
    let a = json!({
        "groupId": GROUP.to_uppercase(), "clusterName": "orders",
        "restore": {"delivery": {"targetClusterName": "orders-drill", "targetGroupId": GROUP, "methodName": "AUTOMATED_RESTORE"}, "snapshotId": SNAPSHOT.to_uppercase()},
        "idempotencyKey": "k1", "requestedBy": "U1", "reason": "first", "dryRun": true
    });
    let b = json!({
        "backupType": "legacy", "clusterName": "orders", "groupId": GROUP,
        "restore": {"snapshotId": SNAPSHOT, "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}},
        "idempotencyKey": "k2", "requestedBy": "U2", "reason": "second"
    });
    let a = RestoreCommand::from_value(&a, now()).unwrap();
    let b = RestoreCommand::from_value(&b, now()).unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(
        atlas_restore_runner::command::canonical_json(&a.canonical()),
        format!(
            r#"{{"backupType":"legacy","clusterName":"orders","groupId":"{GROUP}","restore":{{"delivery":{{"methodName":"AUTOMATED_RESTORE","targetClusterName":"orders-drill","targetGroupId":"{GROUP}"}},"snapshotId":"{SNAPSHOT}"}},"restorePoint":null}}"#
        )
    );
}

#[test]
fn different_restores_have_different_fingerprints_and_run_time_points_stay_unresolved() {
    let fingerprints: Vec<String> = every_shape()
        .into_iter()
        .map(|(_, c)| RestoreCommand::from_value(&c, now()).unwrap().fingerprint())
        .collect();
    let mut unique = fingerprints.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), fingerprints.len());

    let minutes = RestoreCommand::from_value(&every_shape()[5].1, now()).unwrap();
    let later =
        RestoreCommand::from_value(&every_shape()[5].1, now() + chrono::Duration::minutes(10))
            .unwrap();
    assert_eq!(
        minutes.fingerprint(),
        later.fingerprint(),
        "a schedule's command means the same at any run"
    );
    assert_eq!(
        minutes.canonical()["restorePoint"],
        json!({"minutesAgo": 15})
    );
    assert_eq!(
        minutes.canonical()["restore"].get("pointInTimeUTCMillis"),
        None
    );
}

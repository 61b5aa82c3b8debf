//! Cloud Backup restores (`backupType: "cloud"`, `DiskBackupSnapshotRestoreJob`): every rule
//! valid and invalid, every body we can send checked against Atlas's schema, and the field
//! lists against the OpenAPI definition.
mod support;

use atlas_restore_runner::command::{ObjectId, RestoreCommand, RestoreSpec};
use atlas_restore_runner::outcome::ErrorCode::{self, *};
use serde_json::{Value, json};
use support::clock::now;
use support::schema::violations;

const GROUP: &str = "5e2211c17a3e5a48f5497de3";
const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";

fn seconds_ago(seconds: i64) -> i64 {
    now().timestamp() - seconds
}

fn cloud(restore: Value) -> Value {
    json!({"groupId": GROUP, "clusterName": "orders", "backupType": "cloud", "restore": restore})
}

fn automated() -> Value {
    json!({"deliveryType": "automated", "snapshotId": SNAPSHOT, "targetGroupId": GROUP, "targetClusterName": "orders-drill"})
}

fn point_in_time() -> Value {
    json!({"deliveryType": "pointInTime", "pointInTimeUTCSeconds": seconds_ago(3600), "targetGroupId": GROUP, "targetClusterName": "orders-drill"})
}

fn with(mut value: Value, changes: &[(&str, Option<Value>)]) -> Value {
    for (name, change) in changes {
        let object = value.as_object_mut().unwrap();
        match change {
            Some(v) => object.insert(name.to_string(), v.clone()),
            None => object.remove(*name),
        };
    }
    value
}

fn problems(command: &Value) -> Vec<(String, ErrorCode)> {
    match RestoreCommand::from_value(command, now()) {
        Ok(_) => vec![],
        Err(problems) => {
            let mut found: Vec<(String, ErrorCode)> =
                problems.into_iter().map(|p| (p.field, p.code)).collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            found
        }
    }
}

fn expect(case: &str, command: Value, expected: &[(&str, ErrorCode)]) {
    let mut want: Vec<(String, ErrorCode)> =
        expected.iter().map(|(f, c)| (f.to_string(), *c)).collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(problems(&command), want, "case: {case}\ncommand: {command}");
}

#[test]
fn the_three_delivery_types_are_valid() {
    expect("automated", cloud(automated()), &[]);
    expect(
        "download",
        cloud(json!({"deliveryType": "download", "snapshotId": SNAPSHOT})),
        &[],
    );
    expect("pointInTime seconds", cloud(point_in_time()), &[]);
    let oplog = with(
        point_in_time(),
        &[
            ("pointInTimeUTCSeconds", None),
            ("oplogTs", Some(json!(seconds_ago(60)))),
            ("oplogInc", Some(json!(2))),
        ],
    );
    expect("pointInTime oplog", cloud(oplog), &[]);
}

#[test]
fn delivery_type_is_required_and_named_when_wrong() {
    expect(
        "missing",
        cloud(with(automated(), &[("deliveryType", None)])),
        &[("/restore/deliveryType", Required)],
    );
    for bad in ["AUTOMATED_RESTORE", "Automated", "restore", ""] {
        expect(
            bad,
            cloud(with(automated(), &[("deliveryType", Some(json!(bad)))])),
            &[("/restore/deliveryType", UnsupportedMethod)],
        );
    }
    expect(
        "number",
        cloud(with(automated(), &[("deliveryType", Some(json!(1)))])),
        &[("/restore/deliveryType", InvalidType)],
    );
}

#[test]
fn automated_needs_snapshot_and_both_targets_and_no_point_in_time() {
    expect(
        "no snapshot",
        cloud(with(automated(), &[("snapshotId", None)])),
        &[("/restore/snapshotId", Required)],
    );
    expect(
        "no group",
        cloud(with(automated(), &[("targetGroupId", None)])),
        &[("/restore/targetGroupId", Required)],
    );
    expect(
        "no cluster",
        cloud(with(automated(), &[("targetClusterName", None)])),
        &[("/restore/targetClusterName", Required)],
    );
    expect(
        "with seconds",
        cloud(with(
            automated(),
            &[("pointInTimeUTCSeconds", Some(json!(seconds_ago(10))))],
        )),
        &[("/restore/pointInTimeUTCSeconds", NotAllowedWithMethod)],
    );
    expect(
        "bad snapshot",
        cloud(with(automated(), &[("snapshotId", Some(json!("nope")))])),
        &[("/restore/snapshotId", InvalidFormat)],
    );
    expect(
        "bad cluster",
        cloud(with(
            automated(),
            &[("targetClusterName", Some(json!("a/b")))],
        )),
        &[("/restore/targetClusterName", InvalidFormat)],
    );
}

#[test]
fn download_needs_a_snapshot_and_takes_no_target() {
    let download = json!({"deliveryType": "download"});
    expect(
        "no snapshot",
        cloud(download.clone()),
        &[("/restore/snapshotId", Required)],
    );
    let with_target = with(
        download.clone(),
        &[
            ("snapshotId", Some(json!(SNAPSHOT))),
            ("targetClusterName", Some(json!("x"))),
            ("targetGroupId", Some(json!(GROUP))),
        ],
    );
    expect(
        "targets",
        cloud(with_target),
        &[
            ("/restore/targetClusterName", NotAllowedWithMethod),
            ("/restore/targetGroupId", NotAllowedWithMethod),
        ],
    );
}

#[test]
fn point_in_time_rules() {
    expect(
        "no point",
        cloud(with(point_in_time(), &[("pointInTimeUTCSeconds", None)])),
        &[("/restore", Required)],
    );
    expect(
        "with snapshot",
        cloud(with(
            point_in_time(),
            &[("snapshotId", Some(json!(SNAPSHOT)))],
        )),
        &[("/restore/snapshotId", NotAllowedWithMethod)],
    );
    expect(
        "no targets",
        cloud(with(
            point_in_time(),
            &[("targetGroupId", None), ("targetClusterName", None)],
        )),
        &[
            ("/restore/targetGroupId", Required),
            ("/restore/targetClusterName", Required),
        ],
    );
    expect(
        "future",
        cloud(with(
            point_in_time(),
            &[("pointInTimeUTCSeconds", Some(json!(now().timestamp() + 1)))],
        )),
        &[("/restore/pointInTimeUTCSeconds", OutOfWindow)],
    );
    expect(
        "now",
        cloud(with(
            point_in_time(),
            &[("pointInTimeUTCSeconds", Some(json!(now().timestamp())))],
        )),
        &[],
    );
    expect(
        "milliseconds",
        cloud(with(
            point_in_time(),
            &[(
                "pointInTimeUTCSeconds",
                Some(json!(now().timestamp_millis())),
            )],
        )),
        &[("/restore/pointInTimeUTCSeconds", OutOfRange)],
    );
    expect(
        "before 2008",
        cloud(with(
            point_in_time(),
            &[("pointInTimeUTCSeconds", Some(json!(1_199_145_599)))],
        )),
        &[("/restore/pointInTimeUTCSeconds", OutOfRange)],
    );
    expect(
        "decimal",
        cloud(with(
            point_in_time(),
            &[("pointInTimeUTCSeconds", Some(json!(1.5)))],
        )),
        &[("/restore/pointInTimeUTCSeconds", InvalidType)],
    );
    expect(
        "ISO string",
        cloud(with(
            point_in_time(),
            &[("pointInTimeUTCSeconds", Some(json!("2026-11-28T10:00:00Z")))],
        )),
        &[("/restore/pointInTimeUTCSeconds", InvalidType)],
    );
    let both = with(
        point_in_time(),
        &[
            ("oplogTs", Some(json!(seconds_ago(60)))),
            ("oplogInc", Some(json!(1))),
        ],
    );
    expect("seconds and oplog", cloud(both), &[("/restore", Conflict)]);
    let ts_only = with(
        point_in_time(),
        &[
            ("pointInTimeUTCSeconds", None),
            ("oplogTs", Some(json!(seconds_ago(60)))),
        ],
    );
    expect(
        "oplogTs alone",
        cloud(ts_only),
        &[("/restore/oplogInc", Required)],
    );
    let oplog = |ts: Value, inc: Value| {
        cloud(with(
            point_in_time(),
            &[
                ("pointInTimeUTCSeconds", None),
                ("oplogTs", Some(ts)),
                ("oplogInc", Some(inc)),
            ],
        ))
    };
    expect(
        "oplogTs ISO",
        oplog(json!("2026-11-28T10:00:00Z"), json!(1)),
        &[("/restore/oplogTs", InvalidType)],
    );
    expect(
        "oplogTs future",
        oplog(json!(now().timestamp() + 60), json!(1)),
        &[("/restore/oplogTs", OutOfWindow)],
    );
    expect(
        "oplogInc 0",
        oplog(json!(seconds_ago(60)), json!(0)),
        &[("/restore/oplogInc", OutOfRange)],
    );
    expect(
        "oplogInc overflow",
        oplog(json!(seconds_ago(60)), json!(2_147_483_648_i64)),
        &[("/restore/oplogInc", OutOfRange)],
    );
}

#[test]
fn read_only_and_legacy_fields_are_refused_with_hints() {
    for name in [
        "id",
        "finishedAt",
        "failed",
        "deliveryUrl",
        "timestamp",
        "expiresAt",
        "cancelled",
    ] {
        let pointer: &'static str = Box::leak(format!("/restore/{name}").into_boxed_str());
        expect(
            name,
            cloud(with(automated(), &[(name, Some(json!("x")))])),
            &[(pointer, ReadOnlyField)],
        );
    }
    let legacy = cloud(with(
        automated(),
        &[("delivery", Some(json!({"methodName": "AUTOMATED_RESTORE"})))],
    ));
    let refused = RestoreCommand::from_value(&legacy, now()).unwrap_err();
    assert!(
        refused[0].message.contains("\"backupType\": \"legacy\""),
        "{}",
        refused[0].message
    );
    let millis = cloud(with(
        point_in_time(),
        &[("pointInTimeUTCMillis", Some(json!(1)))],
    ));
    let refused = RestoreCommand::from_value(&millis, now()).unwrap_err();
    assert!(
        refused
            .iter()
            .any(|p| p.field == "/restore/pointInTimeUTCMillis"
                && p.message.contains("pointInTimeUTCSeconds")),
        "{refused:?}"
    );
    expect(
        "misspelled",
        cloud(with(
            automated(),
            &[("snapshotID", Some(json!(SNAPSHOT))), ("snapshotId", None)],
        )),
        &[
            ("/restore/snapshotID", UnknownField),
            ("/restore/snapshotId", Required),
        ],
    );
}

#[test]
fn restore_point_at_run_time() {
    let latest = |restore: Value| {
        with(
            cloud(restore),
            &[("restorePoint", Some(json!("latestSnapshot")))],
        )
    };
    expect(
        "latest automated",
        latest(with(automated(), &[("snapshotId", None)])),
        &[],
    );
    expect(
        "latest download",
        latest(json!({"deliveryType": "download"})),
        &[],
    );
    expect(
        "latest and a snapshot",
        latest(automated()),
        &[("", Conflict)],
    );
    expect(
        "latest for pointInTime",
        latest(with(point_in_time(), &[("pointInTimeUTCSeconds", None)])),
        &[("/restorePoint", NotAllowedWithMethod)],
    );
    let minutes = |restore: Value| {
        with(
            cloud(restore),
            &[("restorePoint", Some(json!({"minutesAgo": 30})))],
        )
    };
    expect(
        "minutesAgo pointInTime",
        minutes(with(point_in_time(), &[("pointInTimeUTCSeconds", None)])),
        &[],
    );
    expect(
        "minutesAgo automated",
        minutes(with(automated(), &[("snapshotId", None)])),
        &[("/restorePoint", NotAllowedWithMethod)],
    );
    expect(
        "minutesAgo and seconds",
        minutes(point_in_time()),
        &[("", Conflict)],
    );

    let command = RestoreCommand::from_value(
        &minutes(with(point_in_time(), &[("pointInTimeUTCSeconds", None)])),
        now(),
    )
    .unwrap();
    let job = command.restore.resolve(now(), None).unwrap();
    assert_eq!(
        job.atlas_body()["pointInTimeUTCSeconds"],
        json!(now().timestamp() - 1800),
        "seconds, not milliseconds"
    );
    let command =
        RestoreCommand::from_value(&latest(json!({"deliveryType": "download"})), now()).unwrap();
    assert!(command.restore.needs_latest_snapshot());
    assert!(command.restore.resolve(now(), None).is_none());
    let id = ObjectId::parse(SNAPSHOT).unwrap();
    assert_eq!(
        command
            .restore
            .resolve(now(), Some(&id))
            .unwrap()
            .atlas_body(),
        json!({"deliveryType": "download", "snapshotId": SNAPSHOT})
    );
}

#[test]
fn every_cloud_body_validates_against_disk_backup_snapshot_restore_job() {
    let id = ObjectId::parse(SNAPSHOT).unwrap();
    let bodies = [
        cloud(with(
            automated(),
            &[("snapshotId", Some(json!(SNAPSHOT.to_uppercase())))],
        )),
        cloud(json!({"deliveryType": "download", "snapshotId": SNAPSHOT})),
        cloud(point_in_time()),
        cloud(with(
            point_in_time(),
            &[
                ("pointInTimeUTCSeconds", None),
                ("oplogTs", Some(json!(seconds_ago(60)))),
                ("oplogInc", Some(json!(7))),
            ],
        )),
        with(
            cloud(with(point_in_time(), &[("pointInTimeUTCSeconds", None)])),
            &[("restorePoint", Some(json!({"minutesAgo": 1439})))],
        ),
        with(
            cloud(
                json!({"deliveryType": "automated", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}),
            ),
            &[("restorePoint", Some(json!("latestSnapshot")))],
        ),
    ];
    for command in bodies {
        let parsed = RestoreCommand::from_value(&command, now())
            .unwrap_or_else(|p| panic!("{command}: {p:?}"));
        assert!(matches!(parsed.restore, RestoreSpec::Cloud(_)));
        let body = parsed
            .restore
            .resolve(now(), Some(&id))
            .unwrap()
            .atlas_body();
        assert_eq!(
            violations("DiskBackupSnapshotRestoreJob", &body),
            Vec::<String>::new(),
            "{body}"
        );
        if let Some(id) = body.get("snapshotId").and_then(Value::as_str) {
            assert_eq!(id, id.to_lowercase());
        }
    }
}

#[test]
fn field_lists_follow_the_openapi_definition() {
    let spec: Value =
        serde_json::from_str(include_str!("fixtures/atlas/restore-api.openapi.json")).unwrap();
    let properties = spec["components"]["schemas"]["DiskBackupSnapshotRestoreJob"]["properties"]
        .as_object()
        .unwrap();
    for (name, property) in properties {
        let sample = cloud(with(automated(), &[(name, Some(json!("x")))]));
        let at = format!("/restore/{name}");
        let codes: Vec<ErrorCode> = problems(&sample)
            .into_iter()
            .filter(|(f, _)| *f == at)
            .map(|(_, c)| c)
            .collect();
        if property["readOnly"] == json!(true) {
            assert_eq!(
                codes,
                vec![ReadOnlyField],
                "{at} is read-only in the OpenAPI definition"
            );
        } else {
            assert!(
                !codes.contains(&UnknownField),
                "{at} is writable in the OpenAPI definition: {codes:?}"
            );
        }
    }
}

#[test]
fn cloud_and_legacy_fingerprints_differ_and_cloud_canonical_form_is_stable() {
    let a = RestoreCommand::from_value(&cloud(automated()), now()).unwrap();
    let b = RestoreCommand::from_value(
        &cloud(with(
            automated(),
            &[("snapshotId", Some(json!(SNAPSHOT.to_uppercase())))],
        )),
        now(),
    )
    .unwrap();
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.canonical()["backupType"], "cloud");
    assert_eq!(
        a.canonical()["restore"],
        json!({"deliveryType": "automated", "snapshotId": SNAPSHOT, "targetGroupId": GROUP, "targetClusterName": "orders-drill"})
    );
}

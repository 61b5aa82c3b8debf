//! Table-driven tests of every validation rule of CONTRACT section 1, each valid and invalid.
//! The clock is pinned so point-in-time windows are exact.
#[path = "support/clock.rs"]
mod clock;

use atlas_restore_runner::command::{
    LegacyPoint, LegacyRestoreSpec, RestoreCommand, RestorePointChoice, RestoreSpec, RunTimePoint,
    TargetCluster,
};
use atlas_restore_runner::outcome::ErrorCode::{self, *};
use chrono::Duration;
use clock::now_with_millis as now;
use serde_json::{Value, json};

const GROUP: &str = "5e2211c17a3e5a48f5497de3";
const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";

fn now_millis() -> i64 {
    now().timestamp_millis()
}

/// The contract's example command: valid.
fn base() -> Value {
    json!({
        "groupId": GROUP,
        "clusterName": "orders",
        "backupType": "legacy",
        "restore": {
            "snapshotId": SNAPSHOT,
            "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"}
        },
        "restorePoint": null,
        "idempotencyKey": "approval-7f3a",
        "requestedBy": "U024BE7LH",
        "approvedBy": "U0G9QF9C6",
        "reason": "INC-4211 drop of orders.items",
        "dryRun": false
    })
}

fn download() -> Value {
    json!({"groupId": GROUP, "clusterName": "orders", "restore": {"snapshotId": SNAPSHOT, "delivery": {"methodName": "HTTP"}}})
}

/// A named case: edits to the valid example and the problems they must cause.
type Case = (&'static str, Vec<Edit>, Vec<(&'static str, ErrorCode)>);

enum Edit {
    Set(&'static str, Value),
    Remove(&'static str),
}
use Edit::*;

fn edited(mut command: Value, edits: &[Edit]) -> Value {
    for edit in edits {
        let (pointer, value) = match edit {
            Set(pointer, value) => (*pointer, Some(value.clone())),
            Remove(pointer) => (*pointer, None),
        };
        let (parent, name) = pointer.rsplit_once('/').unwrap();
        let holder = command
            .pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap();
        match value {
            Some(value) => holder.insert(name.to_owned(), value),
            None => holder.remove(name),
        };
    }
    command
}

fn problems_of(command: &Value) -> Vec<(String, ErrorCode)> {
    match RestoreCommand::from_value(command, now()) {
        Ok(_) => vec![],
        Err(problems) => {
            for problem in &problems {
                assert!(
                    !problem.message.is_empty(),
                    "every problem says something: {problem:?}"
                );
            }
            problems.into_iter().map(|p| (p.field, p.code)).collect()
        }
    }
}

fn expect(case: &str, command: Value, expected: &[(&str, ErrorCode)]) {
    let mut got = problems_of(&command);
    let mut want: Vec<(String, ErrorCode)> =
        expected.iter().map(|(f, c)| (f.to_string(), *c)).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want, "case: {case}\ncommand: {command}");
}

#[test]
fn the_contract_example_and_a_download_are_valid() {
    expect("example", base(), &[]);
    expect("download", download(), &[]);
}

#[test]
fn unknown_and_read_only_fields_are_named_never_dropped() {
    let cases: Vec<Case> = vec![
        (
            "misspelled snapshotID",
            vec![
                Remove("/restore/snapshotId"),
                Set("/restore/snapshotID", json!(SNAPSHOT)),
            ],
            vec![
                ("/restore/snapshotID", UnknownField),
                ("/restore", Required),
            ],
        ),
        (
            "checkPointId as a known misspelling",
            vec![Set("/restore/checkPointId", json!(SNAPSHOT))],
            vec![("/restore/checkPointId", UnknownField)],
        ),
        (
            "unknown top-level field",
            vec![Set("/dryrun", json!(true))],
            vec![("/dryrun", UnknownField)],
        ),
        (
            "unknown delivery field",
            vec![Set("/restore/delivery/targetProject", json!(GROUP))],
            vec![("/restore/delivery/targetProject", UnknownField)],
        ),
        (
            "read-only id",
            vec![Set("/restore/id", json!(SNAPSHOT))],
            vec![("/restore/id", ReadOnlyField)],
        ),
        (
            "read-only statusName",
            vec![Set("/restore/statusName", json!("FINISHED"))],
            vec![("/restore/statusName", ReadOnlyField)],
        ),
        (
            "read-only batchId",
            vec![Set("/restore/batchId", json!(SNAPSHOT))],
            vec![("/restore/batchId", ReadOnlyField)],
        ),
        (
            "read-only groupId in the body",
            vec![Set("/restore/groupId", json!(GROUP))],
            vec![("/restore/groupId", ReadOnlyField)],
        ),
        (
            "read-only delivery.url",
            vec![Set("/restore/delivery/url", json!("https://x"))],
            vec![("/restore/delivery/url", ReadOnlyField)],
        ),
        (
            "read-only delivery.authHeader",
            vec![Set("/restore/delivery/authHeader", json!("x"))],
            vec![("/restore/delivery/authHeader", ReadOnlyField)],
        ),
        (
            "read-only delivery.statusName",
            vec![Set("/restore/delivery/statusName", json!("READY"))],
            vec![("/restore/delivery/statusName", ReadOnlyField)],
        ),
        (
            "cloud deliveryType in a legacy body",
            vec![Set("/restore/deliveryType", json!("automated"))],
            vec![("/restore/deliveryType", UnknownField)],
        ),
    ];
    for (case, edits, expected) in cases {
        expect(case, edited(base(), &edits), &expected);
    }
}

#[test]
fn field_names_with_slash_or_tilde_are_escaped_in_pointers() {
    let mut command = base();
    command["restore"]["a/b~c"] = json!(1);
    expect("escaped", command, &[("/restore/a~1b~0c", UnknownField)]);
}

#[test]
fn messages_give_hints_an_operator_can_act_on() {
    let message = |command: Value, field: &str| {
        RestoreCommand::from_value(&command, now())
            .unwrap_err()
            .into_iter()
            .find(|p| p.field == field)
            .unwrap_or_else(|| panic!("no problem at {field}"))
            .message
    };
    let m = message(
        edited(
            base(),
            &[
                Set("/restore/snapshotID", json!(SNAPSHOT)),
                Remove("/restore/snapshotId"),
            ],
        ),
        "/restore/snapshotID",
    );
    assert!(m.contains("did you mean \"snapshotId\""), "{m}");
    let m = message(
        edited(base(), &[Set("/restore/checkPointId", json!(SNAPSHOT))]),
        "/restore/checkPointId",
    );
    assert!(m.contains("checkpointId"), "{m}");
    let m = message(
        edited(base(), &[Set("/restore/deliveryType", json!("automated"))]),
        "/restore/deliveryType",
    );
    assert!(m.contains("\"backupType\": \"cloud\""), "{m}");
    let m = message(
        edited(
            base(),
            &[Set("/restore/delivery/methodName", json!("DOWNLOAD"))],
        ),
        "/restore/delivery/methodName",
    );
    assert!(m.contains("DOWNLOAD") && m.contains("\"HTTP\""), "{m}");
    let m = message(
        edited(
            base(),
            &[Set("/restore/delivery/methodName", json!("QUERY"))],
        ),
        "/restore/delivery/methodName",
    );
    assert!(m.contains("QUERY"), "the refused value is named: {m}");
    let m = message(
        edited(
            base(),
            &[
                Remove("/restore/snapshotId"),
                Set("/restore/pointInTimeUTCMillis", json!(1_764_349_575_i64)),
            ],
        ),
        "/restore/pointInTimeUTCMillis",
    );
    assert!(m.contains("seconds instead of milliseconds"), "{m}");
}

#[test]
fn ids_are_24_hex_digits_in_either_case_and_sent_lower_case() {
    let upper = edited(
        base(),
        &[
            Set("/groupId", json!(GROUP.to_uppercase())),
            Set("/restore/snapshotId", json!(SNAPSHOT.to_uppercase())),
        ],
    );
    let command = RestoreCommand::from_value(&upper, now()).unwrap();
    assert_eq!(command.source.group_id.as_str(), GROUP);
    let RestoreSpec::Legacy(LegacyRestoreSpec::Automated { point, .. }) = &command.restore else {
        panic!()
    };
    assert_eq!(
        point,
        &RestorePointChoice::Given(LegacyPoint::Snapshot(
            atlas_restore_runner::command::ObjectId::parse(SNAPSHOT).unwrap()
        ))
    );

    for (pointer, bad) in [
        ("/groupId", json!("5e2211c17a3e5a48f5497de")),
        ("/groupId", json!("5e2211c17a3e5a48f5497dez")),
        ("/restore/snapshotId", json!("not-an-id")),
        ("/restore/delivery/targetGroupId", json!("")),
    ] {
        expect(
            pointer,
            edited(base(), &[Set(pointer, bad)]),
            &[(pointer, InvalidFormat)],
        );
    }
    expect(
        "groupId as a number",
        edited(base(), &[Set("/groupId", json!(5))]),
        &[("/groupId", InvalidType)],
    );
}

#[test]
fn cluster_names_follow_atlas_pattern_and_64_characters() {
    for good in ["a", "Orders-2", "0x", &"a".repeat(64)] {
        expect(
            good,
            edited(base(), &[Set("/clusterName", json!(good))]),
            &[],
        );
    }
    for bad in [
        "",
        "-x",
        "orders/x",
        "..",
        "orders%2F",
        "or ders",
        "ordérs",
        "orders_1",
        &"a".repeat(65),
    ] {
        expect(
            bad,
            edited(base(), &[Set("/clusterName", json!(bad))]),
            &[("/clusterName", InvalidFormat)],
        );
        expect(
            bad,
            edited(
                base(),
                &[Set("/restore/delivery/targetClusterName", json!(bad))],
            ),
            &[("/restore/delivery/targetClusterName", InvalidFormat)],
        );
    }
}

#[test]
fn required_fields() {
    expect(
        "no groupId",
        edited(base(), &[Remove("/groupId")]),
        &[("/groupId", Required)],
    );
    expect(
        "null groupId",
        edited(base(), &[Set("/groupId", Value::Null)]),
        &[("/groupId", Required)],
    );
    expect(
        "no clusterName",
        edited(base(), &[Remove("/clusterName")]),
        &[("/clusterName", Required)],
    );
    expect(
        "no restore",
        edited(base(), &[Remove("/restore")]),
        &[("/restore", Required)],
    );
    expect(
        "no delivery",
        edited(base(), &[Remove("/restore/delivery")]),
        &[("/restore/delivery", Required)],
    );
    expect(
        "no methodName",
        edited(base(), &[Remove("/restore/delivery/methodName")]),
        &[("/restore/delivery/methodName", Required)],
    );
    expect(
        "empty object",
        json!({}),
        &[
            ("/groupId", Required),
            ("/clusterName", Required),
            ("/restore", Required),
        ],
    );
}

#[test]
fn exactly_one_restore_point() {
    let no_point = edited(base(), &[Remove("/restore/snapshotId")]);
    expect("none", no_point.clone(), &[("/restore", Required)]);
    expect(
        "checkpoint",
        edited(
            no_point.clone(),
            &[Set("/restore/checkpointId", json!(SNAPSHOT))],
        ),
        &[],
    );
    expect(
        "oplog",
        edited(
            no_point.clone(),
            &[
                Set("/restore/oplogTs", json!("2026-11-28T10:00:00Z")),
                Set("/restore/oplogInc", json!(1)),
            ],
        ),
        &[],
    );
    expect(
        "point in time",
        edited(
            no_point.clone(),
            &[Set(
                "/restore/pointInTimeUTCMillis",
                json!(now_millis() - 60_000),
            )],
        ),
        &[],
    );
    expect(
        "restorePoint",
        edited(
            no_point.clone(),
            &[Set("/restorePoint", json!("latestSnapshot"))],
        ),
        &[],
    );
    expect(
        "snapshot and checkpoint",
        edited(base(), &[Set("/restore/checkpointId", json!(SNAPSHOT))]),
        &[("/restore", Conflict)],
    );
    expect(
        "snapshot and point in time",
        edited(
            base(),
            &[Set("/restore/pointInTimeUTCMillis", json!(now_millis()))],
        ),
        &[("/restore", Conflict)],
    );
    expect(
        "snapshot and oplog",
        edited(
            base(),
            &[
                Set("/restore/oplogTs", json!("2026-11-28T10:00:00Z")),
                Set("/restore/oplogInc", json!(1)),
            ],
        ),
        &[("/restore", Conflict)],
    );
    expect(
        "snapshot and restorePoint conflict at the root",
        edited(base(), &[Set("/restorePoint", json!("latestSnapshot"))]),
        &[("", Conflict)],
    );
    expect(
        "an invalid snapshotId still conflicts",
        edited(
            base(),
            &[
                Set("/restore/snapshotId", json!("x")),
                Set("/restore/checkpointId", json!(SNAPSHOT)),
            ],
        ),
        &[
            ("/restore/snapshotId", InvalidFormat),
            ("/restore", Conflict),
        ],
    );
}

#[test]
fn oplog_rules() {
    let no_point = edited(base(), &[Remove("/restore/snapshotId")]);
    let oplog = |ts: Value, inc: Value| {
        edited(
            no_point.clone(),
            &[Set("/restore/oplogTs", ts), Set("/restore/oplogInc", inc)],
        )
    };
    expect(
        "ts alone",
        edited(
            no_point.clone(),
            &[Set("/restore/oplogTs", json!("2026-11-28T10:00:00Z"))],
        ),
        &[("/restore/oplogInc", Required)],
    );
    expect(
        "inc alone",
        edited(no_point.clone(), &[Set("/restore/oplogInc", json!(3))]),
        &[("/restore/oplogTs", Required)],
    );
    for good in [
        "2026-11-28T10:00:00Z",
        "2026-11-28T10:00:00.123456789Z",
        "2026-11-28T12:00:00+02:00",
        "2024-02-29T00:00:00Z",
    ] {
        expect(good, oplog(json!(good), json!(1)), &[]);
    }
    for bad in [
        "2026-11-28 10:00:00Z",
        "2026-11-28T10:00:00",
        "2026-02-30T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "1764324000",
        "2026-11-28t10:00:00z",
        "2026-11-28T24:00:00Z",
        "2026-11-28T10:00:00.1234567890Z",
    ] {
        expect(
            bad,
            oplog(json!(bad), json!(1)),
            &[("/restore/oplogTs", InvalidFormat)],
        );
    }
    expect(
        "ts in the future",
        oplog(json!("2026-11-28T18:00:00Z"), json!(1)),
        &[("/restore/oplogTs", OutOfWindow)],
    );
    expect(
        "ts as epoch number",
        oplog(json!(1_764_324_000), json!(1)),
        &[("/restore/oplogTs", InvalidType)],
    );
    expect(
        "inc 0",
        oplog(json!("2026-11-28T10:00:00Z"), json!(0)),
        &[("/restore/oplogInc", OutOfRange)],
    );
    expect(
        "inc negative",
        oplog(json!("2026-11-28T10:00:00Z"), json!(-1)),
        &[("/restore/oplogInc", OutOfRange)],
    );
    expect(
        "inc int32 max",
        oplog(json!("2026-11-28T10:00:00Z"), json!(i32::MAX)),
        &[],
    );
    expect(
        "inc overflow",
        oplog(
            json!("2026-11-28T10:00:00Z"),
            json!(i64::from(i32::MAX) + 1),
        ),
        &[("/restore/oplogInc", OutOfRange)],
    );
    expect(
        "inc beyond 64 bits",
        oplog(json!("2026-11-28T10:00:00Z"), json!(u64::MAX)),
        &[("/restore/oplogInc", OutOfRange)],
    );
    expect(
        "inc float",
        oplog(json!("2026-11-28T10:00:00Z"), json!(1.0)),
        &[("/restore/oplogInc", InvalidType)],
    );
    expect(
        "inc string",
        oplog(json!("2026-11-28T10:00:00Z"), json!("1")),
        &[("/restore/oplogInc", InvalidType)],
    );
    let command =
        RestoreCommand::from_value(&oplog(json!("2026-11-28T12:00:00+02:00"), json!(7)), now())
            .unwrap();
    let RestoreSpec::Legacy(spec) = &command.restore else {
        panic!("a legacy restore")
    };
    let job = spec.resolve(now(), None).unwrap();
    assert_eq!(
        job.atlas_body()["oplogTs"],
        "2026-11-28T12:00:00+02:00",
        "the timestamp is kept as given"
    );
    assert_eq!(job.atlas_body()["oplogInc"], 7);
}

#[test]
fn point_in_time_window_is_the_last_24_hours_and_never_the_future() {
    let pit = |millis: Value| {
        edited(
            base(),
            &[
                Remove("/restore/snapshotId"),
                Set("/restore/pointInTimeUTCMillis", millis),
            ],
        )
    };
    let day = Duration::hours(24).num_milliseconds();
    expect("now", pit(json!(now_millis())), &[]);
    expect("exactly 24 h ago", pit(json!(now_millis() - day)), &[]);
    expect(
        "one ms in the future",
        pit(json!(now_millis() + 1)),
        &[("/restore/pointInTimeUTCMillis", OutOfWindow)],
    );
    expect(
        "24 h and one ms ago",
        pit(json!(now_millis() - day - 1)),
        &[("/restore/pointInTimeUTCMillis", OutOfWindow)],
    );
    expect(
        "below Atlas minimum",
        pit(json!(1_199_145_599_999_i64)),
        &[("/restore/pointInTimeUTCMillis", OutOfRange)],
    );
    expect(
        "negative",
        pit(json!(-5)),
        &[("/restore/pointInTimeUTCMillis", OutOfRange)],
    );
    expect(
        "seconds not millis",
        pit(json!(now_millis() / 1000)),
        &[("/restore/pointInTimeUTCMillis", OutOfRange)],
    );
    expect(
        "float",
        pit(json!(now_millis() as f64 + 0.5)),
        &[("/restore/pointInTimeUTCMillis", InvalidType)],
    );
    expect(
        "string",
        pit(json!(now_millis().to_string())),
        &[("/restore/pointInTimeUTCMillis", InvalidType)],
    );
}

#[test]
fn point_in_time_kinds_need_automated_restore() {
    let http = |edits: &[Edit]| edited(edited(download(), &[Remove("/restore/snapshotId")]), edits);
    expect(
        "checkpoint",
        http(&[Set("/restore/checkpointId", json!(SNAPSHOT))]),
        &[("/restore/checkpointId", NotAllowedWithMethod)],
    );
    expect(
        "pit",
        http(&[Set("/restore/pointInTimeUTCMillis", json!(now_millis()))]),
        &[("/restore/pointInTimeUTCMillis", NotAllowedWithMethod)],
    );
    expect(
        "oplog",
        http(&[
            Set("/restore/oplogTs", json!("2026-11-28T10:00:00Z")),
            Set("/restore/oplogInc", json!(1)),
        ]),
        &[
            ("/restore/oplogTs", NotAllowedWithMethod),
            ("/restore/oplogInc", NotAllowedWithMethod),
        ],
    );
    expect(
        "minutesAgo",
        http(&[Set("/restorePoint", json!({"minutesAgo": 5}))]),
        &[("/restorePoint", NotAllowedWithMethod)],
    );
    expect(
        "latestSnapshot is fine for a download",
        http(&[Set("/restorePoint", json!("latestSnapshot"))]),
        &[],
    );
}

#[test]
fn method_names() {
    for bad in ["QUERY", "DOWNLOAD", "http", "SCP", "CLIENT_PIT_HTTP", ""] {
        expect(
            bad,
            edited(base(), &[Set("/restore/delivery/methodName", json!(bad))]),
            &[("/restore/delivery/methodName", UnsupportedMethod)],
        );
    }
    expect(
        "number",
        edited(base(), &[Set("/restore/delivery/methodName", json!(1))]),
        &[("/restore/delivery/methodName", InvalidType)],
    );
}

#[test]
fn automated_restore_needs_a_target_group_and_exactly_one_target_cluster() {
    expect(
        "no targetGroupId",
        edited(base(), &[Remove("/restore/delivery/targetGroupId")]),
        &[("/restore/delivery/targetGroupId", Required)],
    );
    expect(
        "no target cluster",
        edited(base(), &[Remove("/restore/delivery/targetClusterName")]),
        &[("/restore/delivery", Required)],
    );
    expect(
        "both",
        edited(
            base(),
            &[Set("/restore/delivery/targetClusterId", json!(SNAPSHOT))],
        ),
        &[("/restore/delivery", Conflict)],
    );
    let by_id = edited(
        base(),
        &[
            Remove("/restore/delivery/targetClusterName"),
            Set(
                "/restore/delivery/targetClusterId",
                json!(SNAPSHOT.to_uppercase()),
            ),
        ],
    );
    let command = RestoreCommand::from_value(&by_id, now()).unwrap();
    let RestoreSpec::Legacy(spec) = &command.restore else {
        panic!("a legacy restore")
    };
    assert_eq!(
        spec.target().unwrap().cluster,
        TargetCluster::Id(atlas_restore_runner::command::ObjectId::parse(SNAPSHOT).unwrap())
    );
    expect(
        "download options",
        edited(
            base(),
            &[
                Set("/restore/delivery/expirationHours", json!(2)),
                Set("/restore/delivery/maxDownloads", json!(1)),
            ],
        ),
        &[
            ("/restore/delivery/expirationHours", NotAllowedWithMethod),
            ("/restore/delivery/maxDownloads", NotAllowedWithMethod),
        ],
    );
}

#[test]
fn http_takes_positive_download_options_and_no_target() {
    let with = |name: &'static str, value: Value| edited(download(), &[Set(name, value)]);
    expect(
        "expirationHours 1",
        with("/restore/delivery/expirationHours", json!(1)),
        &[],
    );
    expect(
        "maxDownloads max",
        with("/restore/delivery/maxDownloads", json!(i32::MAX)),
        &[],
    );
    expect(
        "expirationHours 0",
        with("/restore/delivery/expirationHours", json!(0)),
        &[("/restore/delivery/expirationHours", OutOfRange)],
    );
    expect(
        "maxDownloads -1",
        with("/restore/delivery/maxDownloads", json!(-1)),
        &[("/restore/delivery/maxDownloads", OutOfRange)],
    );
    expect(
        "maxDownloads overflow",
        with("/restore/delivery/maxDownloads", json!(2_147_483_648_i64)),
        &[("/restore/delivery/maxDownloads", OutOfRange)],
    );
    expect(
        "expirationHours float",
        with("/restore/delivery/expirationHours", json!(1.5)),
        &[("/restore/delivery/expirationHours", InvalidType)],
    );
    expect(
        "expirationHours string",
        with("/restore/delivery/expirationHours", json!("2")),
        &[("/restore/delivery/expirationHours", InvalidType)],
    );
    for target in ["targetGroupId", "targetClusterName", "targetClusterId"] {
        let pointer: &'static str =
            Box::leak(format!("/restore/delivery/{target}").into_boxed_str());
        let value = if target == "targetClusterName" {
            json!("orders-drill")
        } else {
            json!(GROUP)
        };
        expect(
            target,
            with(pointer, value),
            &[(pointer, NotAllowedWithMethod)],
        );
    }
}

#[test]
fn restore_point_rules() {
    let rp = |value: Value| {
        edited(
            base(),
            &[Remove("/restore/snapshotId"), Set("/restorePoint", value)],
        )
    };
    expect("latest", rp(json!("latestSnapshot")), &[]);
    expect("minutesAgo 1", rp(json!({"minutesAgo": 1})), &[]);
    expect("minutesAgo 1439", rp(json!({"minutesAgo": 1439})), &[]);
    expect(
        "minutesAgo 0",
        rp(json!({"minutesAgo": 0})),
        &[("/restorePoint/minutesAgo", OutOfRange)],
    );
    expect(
        "minutesAgo 1440",
        rp(json!({"minutesAgo": 1440})),
        &[("/restorePoint/minutesAgo", OutOfRange)],
    );
    expect(
        "minutesAgo -5",
        rp(json!({"minutesAgo": -5})),
        &[("/restorePoint/minutesAgo", OutOfRange)],
    );
    expect(
        "minutesAgo float",
        rp(json!({"minutesAgo": 5.5})),
        &[("/restorePoint/minutesAgo", InvalidType)],
    );
    expect(
        "no minutesAgo",
        rp(json!({})),
        &[("/restorePoint/minutesAgo", Required)],
    );
    expect(
        "extra key",
        rp(json!({"minutesAgo": 5, "hoursAgo": 1})),
        &[("/restorePoint/hoursAgo", UnknownField)],
    );
    expect(
        "unknown name",
        rp(json!("newest")),
        &[("/restorePoint", InvalidFormat)],
    );
    expect("number", rp(json!(5)), &[("/restorePoint", InvalidType)]);
    expect(
        "excludes every point field",
        edited(base(), &[Set("/restorePoint", json!({"minutesAgo": 5}))]),
        &[("", Conflict)],
    );

    let command = RestoreCommand::from_value(&rp(json!({"minutesAgo": 30})), now()).unwrap();
    let RestoreSpec::Legacy(spec) = &command.restore else {
        panic!("a legacy restore")
    };
    let LegacyRestoreSpec::Automated { point, .. } = spec else {
        panic!()
    };
    assert!(
        matches!(point, RestorePointChoice::AtRunTime(RunTimePoint::MinutesAgo(m)) if m.get() == 30)
    );
    let job = spec.resolve(now(), None).unwrap();
    assert_eq!(
        job.atlas_body()["pointInTimeUTCMillis"],
        json!(now_millis() - 30 * 60_000)
    );

    let command = RestoreCommand::from_value(&rp(json!("latestSnapshot")), now()).unwrap();
    let RestoreSpec::Legacy(spec) = &command.restore else {
        panic!("a legacy restore")
    };
    assert!(spec.needs_latest_snapshot());
    assert!(
        spec.resolve(now(), None).is_err(),
        "no completed snapshot cannot resolve"
    );
    let latest = atlas_restore_runner::command::ObjectId::parse(SNAPSHOT).unwrap();
    assert_eq!(
        spec.resolve(now(), Some(&latest)).unwrap().atlas_body()["snapshotId"],
        SNAPSHOT
    );
}

#[test]
fn idempotency_key_and_people() {
    expect(
        "key 128",
        edited(base(), &[Set("/idempotencyKey", json!("k".repeat(128)))]),
        &[],
    );
    expect(
        "key 129",
        edited(base(), &[Set("/idempotencyKey", json!("k".repeat(129)))]),
        &[("/idempotencyKey", InvalidFormat)],
    );
    expect(
        "key empty",
        edited(base(), &[Set("/idempotencyKey", json!(""))]),
        &[("/idempotencyKey", InvalidFormat)],
    );
    expect(
        "key number",
        edited(base(), &[Set("/idempotencyKey", json!(42))]),
        &[("/idempotencyKey", InvalidType)],
    );
    expect(
        "requestedBy array",
        edited(base(), &[Set("/requestedBy", json!(["U1"]))]),
        &[("/requestedBy", InvalidType)],
    );
    expect(
        "reason too long",
        edited(base(), &[Set("/reason", json!("r".repeat(1025)))]),
        &[("/reason", InvalidFormat)],
    );
    expect(
        "dryRun string",
        edited(base(), &[Set("/dryRun", json!("true"))]),
        &[("/dryRun", InvalidType)],
    );
}

#[test]
fn backup_type() {
    expect(
        "default legacy",
        edited(base(), &[Remove("/backupType")]),
        &[],
    );
    expect(
        "unknown",
        edited(base(), &[Set("/backupType", json!("snapshot"))]),
        &[("/backupType", InvalidFormat)],
    );
    // A legacy body under backupType "cloud": every legacy field is named, with a hint.
    let problems = problems_of(&edited(base(), &[Set("/backupType", json!("cloud"))]));
    assert!(
        problems.contains(&("/restore/delivery".to_owned(), UnknownField)),
        "{problems:?}"
    );
    assert!(
        problems.contains(&("/restore/deliveryType".to_owned(), Required)),
        "{problems:?}"
    );
}

#[test]
fn wrong_shapes_are_type_errors_not_panics() {
    for (pointer, value) in [
        ("/restore", json!([])),
        ("/restore", json!("x")),
        ("/restore/delivery", json!(null)),
        ("/restore/delivery", json!([1])),
    ] {
        let problems = problems_of(&edited(base(), &[Set(pointer, value.clone())]));
        assert!(!problems.is_empty(), "{pointer} = {value} must be refused");
    }
    for root in [json!([]), json!("x"), json!(null), json!(1)] {
        assert_eq!(problems_of(&root), vec![(String::new(), InvalidType)]);
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let command = json!({
        "groupId": "nope",
        "clusterName": "bad/name",
        "restore": {"snapshotId": SNAPSHOT, "pointInTimeUTCMillis": 1, "statusName": "X", "delivery": {"methodName": "HTTP", "targetGroupId": GROUP, "maxDownloads": 0}},
        "idempotencyKey": "",
        "surprise": 1
    });
    expect(
        "many",
        command,
        &[
            ("/groupId", InvalidFormat),
            ("/clusterName", InvalidFormat),
            ("/restore/statusName", ReadOnlyField),
            ("/restore/pointInTimeUTCMillis", OutOfRange),
            ("/restore/pointInTimeUTCMillis", NotAllowedWithMethod),
            ("/restore", Conflict),
            ("/restore/delivery/targetGroupId", NotAllowedWithMethod),
            ("/restore/delivery/maxDownloads", OutOfRange),
            ("/idempotencyKey", InvalidFormat),
            ("/surprise", UnknownField),
        ],
    );
}

#[test]
fn malformed_json_and_duplicate_keys_are_one_problem_at_the_root() {
    for bytes in [
        &b"{"[..],
        b"",
        b"not json",
        br#"{"groupId": "a", "groupId": "b"}"#,
    ] {
        let problems = RestoreCommand::parse(bytes, now()).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(
            (problems[0].field.as_str(), problems[0].code),
            ("", MalformedJson)
        );
    }
    assert!(RestoreCommand::parse(base().to_string().as_bytes(), now()).is_ok());
}

#[test]
fn a_drill_is_validated_field_by_field() {
    let drill = |value: Value| edited(base(), &[Set("/drill", value)]);
    expect(
        "a full drill",
        drill(json!({"name": "orders-monthly", "rtoTargetMinutes": 120, "rpoTargetMinutes": 1440})),
        &[],
    );
    expect("a name only", drill(json!({"name": "a.b_c-1"})), &[]);
    type DrillCase = (&'static str, Value, Vec<(&'static str, ErrorCode)>);
    let cases: Vec<DrillCase> = vec![
        (
            "a slash in the name",
            json!({"name": "orders/monthly"}),
            vec![("/drill/name", InvalidFormat)],
        ),
        (
            "an empty name",
            json!({"name": ""}),
            vec![("/drill/name", InvalidFormat)],
        ),
        (
            "a name of 65 characters",
            json!({"name": "a".repeat(65)}),
            vec![("/drill/name", InvalidFormat)],
        ),
        (
            "no name",
            json!({"rtoTargetMinutes": 5}),
            vec![("/drill/name", Required)],
        ),
        (
            "a target of 0",
            json!({"name": "d", "rtoTargetMinutes": 0}),
            vec![("/drill/rtoTargetMinutes", OutOfRange)],
        ),
        (
            "a negative target",
            json!({"name": "d", "rpoTargetMinutes": -5}),
            vec![("/drill/rpoTargetMinutes", OutOfRange)],
        ),
        (
            "a target as a string",
            json!({"name": "d", "rtoTargetMinutes": "120"}),
            vec![("/drill/rtoTargetMinutes", InvalidType)],
        ),
        (
            "a decimal target",
            json!({"name": "d", "rpoTargetMinutes": 1.5}),
            vec![("/drill/rpoTargetMinutes", InvalidType)],
        ),
        (
            "a target over a year",
            json!({"name": "d", "rtoTargetMinutes": 525_601}),
            vec![("/drill/rtoTargetMinutes", OutOfRange)],
        ),
        (
            "an unknown field",
            json!({"name": "d", "rtoTarget": 5}),
            vec![("/drill/rtoTarget", UnknownField)],
        ),
        (
            "not an object",
            json!("orders-monthly"),
            vec![("/drill", InvalidType)],
        ),
        (
            "every problem at once",
            json!({"name": "a b", "rtoTargetMinutes": 0, "rpoTargetMinutes": "x"}),
            vec![
                ("/drill/name", InvalidFormat),
                ("/drill/rtoTargetMinutes", OutOfRange),
                ("/drill/rpoTargetMinutes", InvalidType),
            ],
        ),
    ];
    for (case, value, expected) in cases {
        expect(case, drill(value), &expected);
    }
    let parsed = RestoreCommand::from_value(
        &drill(json!({"name": "orders-monthly", "rpoTargetMinutes": 60})),
        now(),
    )
    .unwrap();
    let spec = parsed.drill.as_ref().unwrap();
    assert_eq!(spec.name.as_str(), "orders-monthly");
    assert_eq!(
        (
            spec.rto_target_minutes,
            spec.rpo_target_minutes.map(|m| m.get())
        ),
        (None, Some(60))
    );
    assert!(parsed.must_follow(false), "a drill is always followed");
}

#[test]
fn a_task_token_is_checked_and_never_echoed() {
    let token = |value: Value| edited(base(), &[Set("/taskToken", value)]);
    expect("a token", token(json!("AQCEAAAAKgAAAA-secret")), &[]);
    expect("a number", token(json!(7)), &[("/taskToken", InvalidType)]);
    expect("empty", token(json!("")), &[("/taskToken", InvalidFormat)]);
    let long = format!("secret-{}", "x".repeat(2048));
    let problems = RestoreCommand::from_value(&token(json!(long)), now()).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(
        (problems[0].field.as_str(), problems[0].code),
        ("/taskToken", InvalidFormat)
    );
    assert!(
        !problems[0].message.contains("secret-"),
        "{}",
        problems[0].message
    );
    let parsed = RestoreCommand::from_value(&token(json!("AQCEAAAAKgAAAA-secret")), now()).unwrap();
    assert!(
        parsed.must_follow(false),
        "a command with a token is always followed"
    );
    assert!(!format!("{parsed:?}").contains("AQCEAAAAKgAAAA-secret"));
}

#[test]
fn neither_drill_nor_task_token_is_part_of_the_fingerprint() {
    let plain = RestoreCommand::from_value(&base(), now()).unwrap();
    let both = RestoreCommand::from_value(
        &edited(
            base(),
            &[
                Set("/drill", json!({"name": "d", "rtoTargetMinutes": 5})),
                Set("/taskToken", json!("t")),
            ],
        ),
        now(),
    )
    .unwrap();
    assert_eq!(plain.fingerprint(), both.fingerprint());
    assert!(!plain.must_follow(false) && plain.must_follow(true));
}

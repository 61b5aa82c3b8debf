//! Drills (CONTRACT section 7) through the real `bootstrap`, against moto (the drill table, the
//! work queue, the topic) and the Atlas double: each verdict, each kind of restore point, the
//! evidence kept and read back, and the drills that must leave none.
mod support;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use support::atlas_double::{Fault, Route};
use support::drills::*;
use support::e2e::E2e;
use support::moto::receive_all;
use support::sample::{status_lookup, with};
use support::stack::*;

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a time, got {value}"))
        .parse()
        .unwrap()
}

fn job_id(outcome: &Value) -> String {
    outcome["atlas"]["jobs"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs a drill of the sample restore to its end with the job set to `status` first.
async fn drill_ending(
    e2e: &E2e,
    key: &str,
    name: &str,
    targets: (Option<u32>, Option<u32>),
    status: &str,
) -> (Value, Value) {
    let submitted = e2e
        .submit(drill_command(key, name, targets.0, targets.1))
        .await;
    e2e.stack
        .atlas
        .set_job_status(&job_id(&submitted), status, None);
    let end = follow_to_end(e2e, |_| {}).await;
    (submitted, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_within_its_targets_passes_keeps_its_evidence_and_links_its_report() {
    let e2e = drills_e2e(&[("PUBLIC_BASE_URL", "https://drills.example.com/prod/")]).await;
    let (submitted, end) = drill_ending(
        &e2e,
        "drill-pass",
        "orders-monthly",
        (Some(120), Some(1440)),
        "FINISHED",
    )
    .await;

    // The SUBMITTED outcome carries the drill and its restore point, unmeasured yet.
    let drill = &submitted["drill"];
    assert_eq!(drill["name"], "orders-monthly");
    assert_eq!(
        (
            drill["rtoTargetMinutes"].as_u64(),
            drill["rpoTargetMinutes"].as_u64()
        ),
        (Some(120), Some(1440))
    );
    assert!(drill.get("verdict").is_none(), "{drill}");
    assert!(submitted.get("reportUrl").is_none());

    assert_eq!(end["outcome"], "FINISHED");
    let figures = &end["drill"];
    assert_eq!(figures["verdict"], "PASSED", "{end}");
    assert_eq!(figures["rtoSeconds"], end["durationSeconds"]);
    let rpo = (time(&end["startedAt"]) - time(&figures["restorePointTime"])).num_seconds();
    assert_eq!(figures["rpoSeconds"].as_i64(), Some(rpo));
    assert!(
        (6 * 3600 - 60..6 * 3600 + 300).contains(&rpo),
        "the sample snapshot is about 6 h old: {rpo}"
    );
    assert!(figures.get("missed").is_none());

    // The evidence, kept before the outcome was published, never expiring.
    let records = evidence(&e2e).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(record["drill"], "orders-monthly");
    let started_micros = time(&end["startedAt"])
        .duration_trunc(Duration::microseconds(1))
        .unwrap();
    assert_eq!(time(&record["startedAt"]), started_micros);
    assert_eq!(record["verdict"], "PASSED");
    assert_eq!(record["requestId"], "drill-pass");
    assert_eq!(record["trigger"], "direct");
    assert_eq!(record["atlasJobIds"], json!([job_id(&submitted)]));
    assert_eq!(record["requestedBy"], REQUESTER);
    assert_eq!(record["approvedBy"], APPROVER);
    assert_eq!(record["reason"], "INC-4211 drop of orders.items");
    assert_eq!(record["rtoSeconds"], figures["rtoSeconds"]);
    assert_eq!(record["rpoSeconds"], figures["rpoSeconds"]);
    assert_eq!(record["target"]["targetClusterName"], "orders-drill");
    assert_eq!(record["restore"], submitted["restore"]);

    // The report link: 30 days, opens the page and the CSV with one signature.
    let url = end["reportUrl"].as_str().expect("reportUrl");
    let (base, query) = url.split_once('?').unwrap();
    assert_eq!(
        base,
        "https://drills.example.com/prod/drills/orders-monthly/report"
    );
    let expires: i64 = query
        .split('&')
        .find_map(|p| p.strip_prefix("expires="))
        .unwrap()
        .parse()
        .unwrap();
    let days = (expires - Utc::now().timestamp()) as f64 / 86_400.0;
    assert!((29.9..=30.0).contains(&days), "{days}");
    let page = e2e
        .answer(link_request("orders-monthly", "report", query))
        .await;
    assert_eq!(page["statusCode"], 200, "{page}");
    assert!(
        page["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page["body"].as_str().unwrap();
    assert_eq!(html.matches("<tr class=\"drill\"").count(), 1);
    let csv = e2e
        .answer(link_request("orders-monthly", "report.csv", query))
        .await;
    assert_eq!(csv["statusCode"], 200);
    assert!(csv["body"].as_str().unwrap().contains(",PASSED,,FINISHED,"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_final_outcome_carries_the_drill_verdict_attribute() {
    let e2e = drills_e2e(&[]).await;
    let submitted = e2e
        .submit(drill_command("drill-attr", "attr", None, Some(60)))
        .await;
    e2e.stack
        .atlas
        .set_job_status(&job_id(&submitted), "FINISHED", None);
    let messages = receive_all(&e2e.stack.sdk, &e2e.stack.work_queue, 1).await;
    let answer = e2e
        .answer(support::events::sqs_event(messages[0].body().unwrap(), "m"))
        .await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let published = receive_all(&e2e.stack.sdk, &e2e.stack.outcomes_queue, 2).await;
    assert_eq!(published.len(), 2);
    let verdicts: Vec<Option<String>> = published
        .iter()
        .map(|m| {
            m.message_attributes()
                .and_then(|a| a.get("drillVerdict"))
                .and_then(|v| v.string_value().map(str::to_owned))
        })
        .collect();
    assert_eq!(verdicts, [None, Some("MISSED_TARGET".to_owned())]);
    let end: Value = serde_json::from_str(published[1].body().unwrap()).unwrap();
    assert_eq!(
        end["drill"]["missed"],
        json!(["rpo"]),
        "a 6 h old snapshot misses 60 min"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_over_its_rpo_target_missed_it() {
    let e2e = drills_e2e(&[]).await;
    let (_, end) = drill_ending(
        &e2e,
        "drill-miss",
        "orders-monthly",
        (Some(120), Some(60)),
        "FINISHED",
    )
    .await;
    assert_eq!(end["drill"]["verdict"], "MISSED_TARGET");
    assert_eq!(end["drill"]["missed"], json!(["rpo"]));
    let records = evidence(&e2e).await;
    assert_eq!(records[0]["verdict"], "MISSED_TARGET");
    assert_eq!(records[0]["missed"], json!(["rpo"]));
}

/// RTO runs from the submission to the check that saw the end, in real time: this test waits
/// out a 1-minute target (about 61 s) so that a slow restore is seen to miss it end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_over_its_rto_target_missed_it() {
    let e2e = drills_e2e(&[]).await;
    let submitted = e2e
        .submit(drill_command("drill-slow", "orders-monthly", Some(1), None))
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(61)).await;
    e2e.stack
        .atlas
        .set_job_status(&job_id(&submitted), "FINISHED", None);
    let end = follow_to_end(&e2e, |_| {}).await;
    assert_eq!(end["outcome"], "FINISHED", "{end}");
    assert_eq!(end["drill"]["verdict"], "MISSED_TARGET", "{end}");
    assert_eq!(end["drill"]["missed"], json!(["rto"]), "{end}");
    let rto = end["drill"]["rtoSeconds"].as_u64().unwrap();
    assert!(
        rto > 60,
        "a restore that took {rto} s cannot miss a 60 s target"
    );
    let records = evidence(&e2e).await;
    assert_eq!(records[0]["verdict"], "MISSED_TARGET");
    assert_eq!(records[0]["missed"], json!(["rto"]));
    assert_eq!(records[0]["rtoSeconds"], json!(rto));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_drill_is_broken_and_kept() {
    let e2e = drills_e2e(&[]).await;
    let (_, end) = drill_ending(
        &e2e,
        "drill-broken",
        "orders-monthly",
        (Some(120), None),
        "BROKEN",
    )
    .await;
    assert_eq!(end["outcome"], "BROKEN");
    assert_eq!(end["drill"]["verdict"], "BROKEN");
    assert_eq!(end["drill"]["rtoSeconds"], end["durationSeconds"]);
    assert_eq!(evidence(&e2e).await[0]["verdict"], "BROKEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_drill_is_stalled_and_kept() {
    let e2e = drills_e2e(&[("FOLLOW_MAX_HOURS", "0.0005")]).await;
    e2e.submit(drill_command("drill-stalled", "orders-monthly", None, None))
        .await;
    let end = follow_to_end(&e2e, |_| {}).await;
    assert_eq!(end["outcome"], "STALLED");
    assert_eq!(end["drill"]["verdict"], "STALLED");
    assert_eq!(evidence(&e2e).await[0]["verdict"], "STALLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_atlas_refuses_is_failed_and_kept_without_following() {
    let e2e = drills_e2e(&[]).await;
    e2e.stack.atlas.push_fault(
        Route::CreateRestoreJob,
        Fault::Status {
            status: 400,
            error_code: "INVALID_ATTRIBUTE".into(),
            retry_after: None,
        },
    );
    let outcome = e2e
        .answer(drill_command(
            "drill-failed",
            "orders-monthly",
            Some(60),
            None,
        ))
        .await;
    assert_eq!(outcome["outcome"], "FAILED", "{outcome}");
    assert_eq!(outcome["drill"]["verdict"], "FAILED");
    assert!(outcome["drill"].get("rtoSeconds").is_none());
    let records = evidence(&e2e).await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        (
            records[0]["verdict"].as_str(),
            records[0]["outcome"].as_str()
        ),
        (Some("FAILED"), Some("FAILED"))
    );
    assert!(
        receive_all(&e2e.stack.sdk, &e2e.stack.work_queue, 0)
            .await
            .is_empty(),
        "nothing to follow"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_whose_submission_is_unknown_is_kept_as_unknown() {
    let e2e = drills_e2e(&[]).await;
    e2e.stack
        .atlas
        .push_fault(Route::CreateRestoreJob, Fault::DropAfterBody);
    let outcome = e2e
        .answer(drill_command("drill-unknown", "orders-monthly", None, None))
        .await;
    assert_eq!(outcome["outcome"], "UNKNOWN", "{outcome}");
    assert_eq!(outcome["drill"]["verdict"], "UNKNOWN");
    assert_eq!(evidence(&e2e).await[0]["verdict"], "UNKNOWN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_drills_are_rejected_naming_the_field_and_leave_nothing() {
    let e2e = drills_e2e(&[]).await;
    let cases = [
        (json!({"name": "orders/monthly"}), "/drill/name"),
        (json!({"name": ""}), "/drill/name"),
        (
            json!({"name": "orders", "rtoTargetMinutes": 0}),
            "/drill/rtoTargetMinutes",
        ),
        (
            json!({"name": "orders", "rpoTargetMinutes": "120"}),
            "/drill/rpoTargetMinutes",
        ),
    ];
    for (i, (drill, field)) in cases.into_iter().enumerate() {
        let command = with(
            drill_command(&format!("bad-{i}"), "x", None, None),
            "/drill",
            drill.clone(),
        );
        let outcome = e2e.answer(command).await;
        assert_eq!(outcome["outcome"], "REJECTED", "{drill}: {outcome}");
        let fields: Vec<&str> = outcome["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{drill}: {outcome}");
        assert!(outcome["drill"].get("verdict").is_none_or(Value::is_null));
    }
    assert!(
        evidence(&e2e).await.is_empty(),
        "a REJECTED drill never ran: no evidence"
    );
    assert_eq!(e2e.jobs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_without_the_work_queue_is_rejected() {
    let e2e = E2e::start(&[("DRILL_TABLE", DRILL_TABLE)]).await;
    let outcome = e2e
        .answer(drill_command("no-queue", "orders-monthly", None, None))
        .await;
    assert_eq!(outcome["outcome"], "REJECTED", "{outcome}");
    assert_eq!(outcome["errors"][0]["field"], "/drill");
    assert_eq!(outcome["errors"][0]["code"], "FOLLOW_NEEDS_QUEUE");
    assert_eq!(e2e.jobs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_drill_is_no_drill() {
    let e2e = drills_e2e(&[]).await;
    let command = with(
        drill_command("dry", "orders-monthly", None, None),
        "/reason",
        json!("rehearsal"),
    );
    let mut command = command;
    command["dryRun"] = json!(true);
    let outcome = e2e.answer(command).await;
    assert_eq!(outcome["outcome"], "DRY_RUN", "{outcome}");
    assert!(outcome["drill"].get("verdict").is_none());
    assert!(evidence(&e2e).await.is_empty());
    assert!(
        receive_all(&e2e.stack.sdk, &e2e.stack.work_queue, 0)
            .await
            .is_empty(),
        "not followed"
    );
    assert!(
        e2e.stack.atlas.requests_on(Route::GetSnapshot).is_empty(),
        "nothing read for a dry run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_evidence_outlives_the_idempotency_record() {
    let e2e = drills_e2e(&[]).await;
    drill_ending(
        &e2e,
        "drill-kept",
        "orders-monthly",
        (None, None),
        "FINISHED",
    )
    .await;
    // The idempotency record expires (DynamoDB's TTL deletes it).
    aws_sdk_dynamodb::Client::new(&e2e.stack.sdk)
        .delete_item()
        .table_name(TABLE)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S("drill-kept".into()),
        )
        .send()
        .await
        .unwrap();
    let (status, _) = e2e.http(status_lookup("drill-kept")).await;
    assert_eq!(status, 404, "the request itself is forgotten");
    let (status, body) = e2e.http(drills_lookup("orders-monthly", "")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["drills"].as_array().unwrap().len(), 1);
    assert_eq!(body["drills"][0]["requestId"], "drill-kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_pages_back_with_before_and_refuses_what_is_malformed() {
    let e2e = drills_e2e(&[]).await;
    for (i, status) in ["FINISHED", "BROKEN", "FINISHED"].iter().enumerate() {
        drill_ending(
            &e2e,
            &format!("page-{i}"),
            "orders-weekly",
            (Some(120), None),
            status,
        )
        .await;
    }
    drill_ending(&e2e, "other", "orders-other", (None, None), "FINISHED").await;
    let (status, body) = e2e.http(drills_lookup("orders-weekly", "")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["drill"], "orders-weekly");
    let ids: Vec<&str> = body["drills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["requestId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["page-2", "page-1", "page-0"],
        "newest first, this drill's only"
    );
    let summary = &body["summary"];
    assert_eq!(
        (summary["count"].as_u64(), summary["passed"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(summary["passRate"], 0.6667);
    assert_eq!(summary["lastPassedAt"], body["drills"][0]["startedAt"]);
    assert!(summary["rtoSecondsMax"].is_u64() && summary["rpoSecondsMax"].is_u64());

    let before = body["drills"][1]["startedAt"].as_str().unwrap();
    let (status, page) = e2e
        .http(drills_lookup("orders-weekly", &format!("before={before}")))
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["drills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["requestId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["page-0"]);
    assert_eq!(page["summary"]["count"], 1, "the summary is the page's");

    let (status, body) = e2e
        .http(drills_lookup("orders-weekly", "before=last-week"))
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (400, Some("before")),
        "{body}"
    );
    let (status, body) = e2e.http(drills_lookup("orders-weekly", "limit=3")).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (400, Some("limit"))
    );
    let (status, body) = e2e.http(drills_lookup("orders%2Fweekly", "")).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (400, Some("name")),
        "{body}"
    );
    let (status, _) = e2e
        .http(support::events::get_request(
            "/drills/orders-weekly",
            "GET /drills/orders-weekly",
            None,
        ))
        .await;
    assert_eq!(status, 401, "unsigned");
    let (status, _) = e2e
        .http(support::events::get_request(
            "/drills/orders-weekly",
            "GET /drills/orders-other",
            Some(SIGNING_SECRET),
        ))
        .await;
    assert_eq!(status, 401, "signed for another drill");
    let (status, body) = e2e.http(drills_lookup("never-ran", "")).await;
    assert_eq!((status, body["summary"]["count"].as_u64()), (200, Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_links_are_refused_once_expired_too_far_ahead_or_tampered() {
    let e2e = drills_e2e(&[]).await;
    let now = Utc::now().timestamp();
    let status = |event: Value| {
        let e2e = &e2e;
        async move { e2e.answer(event).await["statusCode"].as_u64().unwrap() }
    };
    let good = link_query("orders-monthly", now + 3600);
    assert_eq!(
        status(link_request("orders-monthly", "report", &good)).await,
        200
    );
    assert_eq!(
        status(link_request("orders-monthly", "report.csv", &good)).await,
        200
    );
    assert_eq!(
        status(link_request(
            "orders-monthly",
            "report",
            &link_query("orders-monthly", now - 1)
        ))
        .await,
        401,
        "expired"
    );
    assert_eq!(
        status(link_request(
            "orders-monthly",
            "report",
            &link_query("orders-monthly", now + 32 * 86_400)
        ))
        .await,
        401,
        "too far ahead"
    );
    let tampered = good.replace(
        &format!("expires={}", now + 3600),
        &format!("expires={}", now + 7200),
    );
    assert_eq!(
        status(link_request("orders-monthly", "report", &tampered)).await,
        401,
        "expiry changed"
    );
    assert_eq!(
        status(link_request("orders-other", "report", &good)).await,
        401,
        "another drill"
    );
    assert_eq!(
        status(link_request("orders-monthly", "report", "")).await,
        401,
        "unsigned"
    );
    let extra = format!("{good}&x=1");
    assert_eq!(
        status(link_request("orders-monthly", "report", &extra)).await,
        400,
        "signed, but an unknown parameter"
    );
    assert_eq!(
        status(link_request("orders-monthly", "summary", &good)).await,
        400,
        "no such view"
    );
}

// --- each kind of restore point -------------------------------------------------------------

/// A time on the second, some `hours` ago.
fn hours_ago(hours: i64) -> DateTime<Utc> {
    (Utc::now() - Duration::hours(hours))
        .duration_trunc(Duration::seconds(1))
        .unwrap()
}

/// The reads on `route` Atlas answered (the client's Digest handshake is no read).
fn reads_on(e2e: &E2e, route: Route) -> usize {
    e2e.stack
        .atlas
        .requests_on(route)
        .iter()
        .filter(|r| r.status == Some(200))
        .count()
}

const OWN_SNAPSHOT: &str = "6b0000000000000000000077";

/// A drill of `restore` (the command's `restore`, with `extra` at the top) submitted; its
/// `restorePointTime` and the Atlas reads of snapshots and checkpoints it took.
async fn restore_point_of(
    e2e: &E2e,
    backup_type: &str,
    restore: Value,
    extra: Value,
) -> (DateTime<Utc>, Value, usize) {
    let mut command = drill_command("point", "points", None, None);
    command["restore"] = restore;
    command["backupType"] = json!(backup_type);
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            command[k] = v;
        }
    }
    let submitted = e2e.submit(command).await;
    let reads = [
        Route::GetSnapshot,
        Route::GetCloudSnapshot,
        Route::GetCheckpoint,
    ]
    .iter()
    .map(|r| reads_on(e2e, *r))
    .sum();
    (
        time(&submitted["drill"]["restorePointTime"]),
        submitted,
        reads,
    )
}

fn legacy_target() -> Value {
    json!({"methodName": "AUTOMATED_RESTORE", "targetGroupId": GROUP, "targetClusterName": "orders-drill"})
}

fn cloud_target(kind: &str) -> Value {
    json!({"deliveryType": kind, "targetGroupId": GROUP, "targetClusterName": "orders-drill"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_snapshot_is_read_once_for_its_last_applied_oplog_time() {
    let e2e = drills_e2e(&[]).await;
    let created = hours_ago(3);
    e2e.stack
        .atlas
        .add_snapshot(GROUP, "orders", OWN_SNAPSHOT, created, true);
    let restore = json!({"snapshotId": OWN_SNAPSHOT, "delivery": legacy_target()});
    let (point, _, reads) = restore_point_of(&e2e, "legacy", restore, json!({})).await;
    // The double's snapshot data is as of lastOplogAppliedTimestamp: 2 minutes before created.
    assert_eq!(point, created - Duration::minutes(2));
    assert_eq!(reads, 1, "one snapshot read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_snapshot_is_read_once_for_its_created_at() {
    let e2e = drills_e2e(&[]).await;
    let created = hours_ago(2);
    e2e.stack
        .atlas
        .add_cloud_snapshot(GROUP, "orders", OWN_SNAPSHOT, created, "completed");
    let mut restore = cloud_target("automated");
    restore["snapshotId"] = json!(OWN_SNAPSHOT);
    let (point, _, reads) = restore_point_of(&e2e, "cloud", restore, json!({})).await;
    assert_eq!(point, created);
    assert_eq!(reads, 1);
    assert_eq!(reads_on(&e2e, Route::GetCloudSnapshot), 1, "the v2 read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_in_time_in_millis_is_its_own_time() {
    let e2e = drills_e2e(&[]).await;
    let at = Utc::now() - Duration::minutes(45);
    let restore =
        json!({"pointInTimeUTCMillis": at.timestamp_millis(), "delivery": legacy_target()});
    let (point, _, reads) = restore_point_of(&e2e, "legacy", restore, json!({})).await;
    assert_eq!(point.timestamp_millis(), at.timestamp_millis());
    assert_eq!(reads, 0, "nothing read: the body says it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_in_time_in_seconds_is_its_own_time() {
    let e2e = drills_e2e(&[]).await;
    let at = hours_ago(1);
    let mut restore = cloud_target("pointInTime");
    restore["pointInTimeUTCSeconds"] = json!(at.timestamp());
    let (point, _, reads) = restore_point_of(&e2e, "cloud", restore, json!({})).await;
    assert_eq!((point, reads), (at, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oplog_point_is_its_own_time() {
    let e2e = drills_e2e(&[]).await;
    let at = hours_ago(2);
    let restore = json!({"oplogTs": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "oplogInc": 3, "delivery": legacy_target()});
    let (point, _, reads) = restore_point_of(&e2e, "legacy", restore, json!({})).await;
    assert_eq!((point, reads), (at, 0));
    let mut cloud = cloud_target("pointInTime");
    cloud["oplogTs"] = json!(at.timestamp() - 60);
    cloud["oplogInc"] = json!(1);
    let mut command = drill_command("point-cloud-oplog", "points", None, None);
    command["restore"] = cloud;
    command["backupType"] = json!("cloud");
    let submitted = e2e.submit(command).await;
    assert_eq!(
        time(&submitted["drill"]["restorePointTime"]),
        at - Duration::seconds(60)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_is_read_once_for_its_timestamp() {
    let e2e = drills_e2e(&[]).await;
    e2e.stack
        .atlas
        .add_cluster(GROUP, "sharded", "6a0000000000000000000003", 2);
    let at = hours_ago(4);
    let checkpoint = "6c0000000000000000000011";
    e2e.stack
        .atlas
        .add_checkpoint(GROUP, "sharded", checkpoint, at);
    let restore = json!({"checkpointId": checkpoint, "delivery": legacy_target()});
    let (point, _, reads) =
        restore_point_of(&e2e, "legacy", restore, json!({"clusterName": "sharded"})).await;
    assert_eq!((point, reads), (at, 1));
    assert_eq!(reads_on(&e2e, Route::GetCheckpoint), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_snapshot_takes_the_time_from_the_listing_it_already_read() {
    let e2e = drills_e2e(&[]).await;
    let created = (Utc::now() - Duration::minutes(20))
        .duration_trunc(Duration::seconds(1))
        .unwrap();
    e2e.stack
        .atlas
        .add_snapshot(GROUP, "orders", OWN_SNAPSHOT, created, true);
    let restore = json!({"delivery": legacy_target()});
    let (point, submitted, reads) = restore_point_of(
        &e2e,
        "legacy",
        restore,
        json!({"restorePoint": "latestSnapshot"}),
    )
    .await;
    assert_eq!(
        submitted["restore"]["snapshotId"], OWN_SNAPSHOT,
        "the newest"
    );
    assert_eq!(point, created - Duration::minutes(2));
    assert_eq!(reads, 0, "no read beyond the listing");
    assert_eq!(reads_on(&e2e, Route::ListSnapshots), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minutes_ago_is_that_point_in_time() {
    let e2e = drills_e2e(&[]).await;
    let restore = json!({"delivery": legacy_target()});
    let (point, submitted, reads) = restore_point_of(
        &e2e,
        "legacy",
        restore,
        json!({"restorePoint": {"minutesAgo": 30}}),
    )
    .await;
    assert_eq!(
        point,
        time(&submitted["startedAt"])
            .duration_trunc(Duration::milliseconds(1))
            .unwrap()
            - Duration::minutes(30)
    );
    assert_eq!(reads, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_whose_evidence_cannot_be_kept_is_published_only_once_it_is() {
    let e2e = drills_e2e(&[]).await;
    let submitted = e2e
        .submit(drill_command(
            "drill-retry",
            "orders-monthly",
            Some(120),
            None,
        ))
        .await;
    assert_eq!(e2e.published(1).await.len(), 1, "the SUBMITTED");
    e2e.stack
        .atlas
        .set_job_status(&job_id(&submitted), "FINISHED", None);
    // The drill table is unusable (deleted here; a lost grant fails the same way).
    let dynamo = aws_sdk_dynamodb::Client::new(&e2e.stack.sdk);
    dynamo
        .delete_table()
        .table_name(DRILL_TABLE)
        .send()
        .await
        .unwrap();
    let messages = receive_all(&e2e.stack.sdk, &e2e.stack.work_queue, 1).await;
    let check = messages[0].body().unwrap().to_owned();
    let answer = e2e
        .answer(support::events::sqs_event(&check, "m-retry"))
        .await;
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "m-retry"}]}),
        "a dependency failure: SQS delivers the check again"
    );
    assert!(
        e2e.published(0).await.is_empty(),
        "no outcome without its evidence"
    );

    create_drill_table(&e2e.stack.sdk).await;
    for _ in 0..2 {
        let answer = e2e
            .answer(support::events::sqs_event(&check, "m-retry"))
            .await;
        assert_eq!(answer, json!({"batchItemFailures": []}));
    }
    let published = e2e.published(1).await;
    assert_eq!(published.len(), 1, "published once: {published:?}");
    assert_eq!(published[0]["drill"]["verdict"], "PASSED");
    let records = evidence(&e2e).await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["rtoSeconds"],
        published[0]["drill"]["rtoSeconds"]
    );
}

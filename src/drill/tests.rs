use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::*;
use crate::command::{
    AutomatedTarget, CloudTarget, ClusterName, DownloadOptions, PositiveInt32, TargetCluster,
};
use crate::outcome::{AtlasSummary, DrillFigures, JobSummary};

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn oid(n: u8) -> ObjectId {
    ObjectId::parse(&format!("{n:024x}")).unwrap()
}

fn legacy_target() -> AutomatedTarget {
    AutomatedTarget {
        group_id: oid(1),
        cluster: TargetCluster::Name(ClusterName::parse("restore-test").unwrap()),
    }
}

fn cloud_target() -> CloudTarget {
    CloudTarget {
        group_id: oid(1),
        cluster_name: ClusterName::parse("restore-test").unwrap(),
    }
}

#[test]
fn each_restore_point_kind_says_where_its_time_comes_from() {
    let legacy = |point| {
        ResolvedRestore::Legacy(LegacyRestoreJob::Automated {
            point,
            target: legacy_target(),
        })
    };
    assert_eq!(
        RestorePoint::of(&legacy(LegacyPoint::Snapshot(oid(7)))),
        RestorePoint::LegacySnapshot(oid(7))
    );
    assert_eq!(
        RestorePoint::of(&legacy(LegacyPoint::Checkpoint(oid(8)))),
        RestorePoint::Checkpoint(oid(8))
    );
    assert_eq!(
        RestorePoint::of(&legacy(LegacyPoint::PointInTime {
            utc_millis: 1_795_000_000_500
        })),
        RestorePoint::At(DateTime::from_timestamp_millis(1_795_000_000_500).unwrap())
    );
    assert_eq!(
        RestorePoint::of(&legacy(LegacyPoint::Oplog {
            timestamp: "2026-11-28T17:06:15Z".into(),
            increment: PositiveInt32::new(3).unwrap(),
        })),
        RestorePoint::At(at("2026-11-28T17:06:15Z"))
    );
    let download = ResolvedRestore::Legacy(LegacyRestoreJob::Download {
        snapshot_id: oid(9),
        options: DownloadOptions::default(),
    });
    assert_eq!(
        RestorePoint::of(&download),
        RestorePoint::LegacySnapshot(oid(9))
    );
    let cloud = ResolvedRestore::Cloud(CloudRestoreJob::Automated {
        snapshot_id: oid(10),
        target: cloud_target(),
    });
    assert_eq!(
        RestorePoint::of(&cloud),
        RestorePoint::CloudSnapshot(oid(10))
    );
    let cloud_download = ResolvedRestore::Cloud(CloudRestoreJob::Download {
        snapshot_id: oid(11),
    });
    assert_eq!(
        RestorePoint::of(&cloud_download),
        RestorePoint::CloudSnapshot(oid(11))
    );
    let seconds = ResolvedRestore::Cloud(CloudRestoreJob::PointInTime {
        point: CloudPoint::Seconds(1_795_000_000),
        target: cloud_target(),
    });
    assert_eq!(
        RestorePoint::of(&seconds).known(),
        DateTime::from_timestamp(1_795_000_000, 0)
    );
    let oplog = ResolvedRestore::Cloud(CloudRestoreJob::PointInTime {
        point: CloudPoint::Oplog {
            timestamp_seconds: 1_795_000_100,
            increment: PositiveInt32::new(1).unwrap(),
        },
        target: cloud_target(),
    });
    assert_eq!(
        RestorePoint::of(&oplog).known(),
        DateTime::from_timestamp(1_795_000_100, 0)
    );
}

#[test]
fn a_snapshot_or_checkpoint_read_gives_its_time_as_the_contract_says() {
    let legacy = RestorePoint::LegacySnapshot(oid(1));
    let both = json!({"id": "x", "created": {"date": "2026-11-28T10:00:00Z", "increment": 1},
        "lastOplogAppliedTimestamp": {"date": "2026-11-28T09:59:30Z", "increment": 4}});
    assert_eq!(legacy.time_from(&both), Some(at("2026-11-28T09:59:30Z")));
    let created_only = json!({"id": "x", "created": {"date": "2026-11-28T10:00:00Z"}});
    assert_eq!(
        legacy.time_from(&created_only),
        Some(at("2026-11-28T10:00:00Z"))
    );
    assert_eq!(legacy.time_from(&json!({"id": "x"})), None);
    assert_eq!(legacy.known(), None);
    let cloud = RestorePoint::CloudSnapshot(oid(1));
    assert_eq!(
        cloud.time_from(&json!({"createdAt": "2026-11-28T08:00:00Z"})),
        Some(at("2026-11-28T08:00:00Z"))
    );
    assert_eq!(cloud.time_from(&json!({"createdAt": "yesterday"})), None);
    let checkpoint = RestorePoint::Checkpoint(oid(1));
    assert_eq!(
        checkpoint.time_from(&json!({"timestamp": "2026-11-28T07:00:00Z"})),
        Some(at("2026-11-28T07:00:00Z"))
    );
    assert_eq!(
        checkpoint.time_from(&json!({"timestamp": {"date": "2026-11-28T07:00:00Z"}})),
        Some(at("2026-11-28T07:00:00Z"))
    );
}

#[test]
fn rpo_counts_to_the_submission_and_rto_is_the_duration() {
    let submitted = at("2026-12-01T10:00:00Z");
    let measured = Measured::of(
        Some(submitted - Duration::minutes(370)),
        submitted,
        Some(2520),
    );
    assert_eq!(measured.rpo_seconds, Some(370 * 60));
    assert_eq!(measured.rto_seconds, Some(2520));
    // A restore point after the submission (clock skew) is no negative loss.
    let skewed = Measured::of(Some(submitted + Duration::seconds(5)), submitted, None);
    assert_eq!(skewed.rpo_seconds, Some(0));
    assert_eq!(Measured::of(None, submitted, None).rpo_seconds, None);
}

#[test]
fn the_verdict_weighs_each_target_given() {
    let measured = Measured {
        rpo_seconds: Some(6 * 3600),
        rto_seconds: Some(42 * 60),
    };
    let targets = |rto, rpo| Targets {
        rto_minutes: rto,
        rpo_minutes: rpo,
    };
    let finished = OutcomeKind::Finished;
    assert_eq!(
        verdict(finished, targets(Some(120), Some(1440)), &measured),
        Some((Verdict::Passed, vec![]))
    );
    assert_eq!(
        verdict(finished, targets(None, None), &measured),
        Some((Verdict::Passed, vec![]))
    );
    // Exactly on the target passes.
    assert_eq!(
        verdict(finished, targets(Some(42), Some(360)), &measured),
        Some((Verdict::Passed, vec![]))
    );
    assert_eq!(
        verdict(finished, targets(Some(41), Some(1440)), &measured),
        Some((Verdict::MissedTarget, vec![Missed::Rto]))
    );
    assert_eq!(
        verdict(finished, targets(Some(120), Some(359)), &measured),
        Some((Verdict::MissedTarget, vec![Missed::Rpo]))
    );
    assert_eq!(
        verdict(finished, targets(Some(1), Some(1)), &measured),
        Some((Verdict::MissedTarget, vec![Missed::Rto, Missed::Rpo]))
    );
    // A figure that could not be measured does not show the target was met.
    let unknown_rpo = Measured {
        rpo_seconds: None,
        rto_seconds: Some(60),
    };
    assert_eq!(
        verdict(finished, targets(None, Some(60)), &unknown_rpo),
        Some((Verdict::MissedTarget, vec![Missed::Rpo]))
    );
    for (kind, expected) in [
        (OutcomeKind::Broken, Verdict::Broken),
        (OutcomeKind::Stalled, Verdict::Stalled),
        (OutcomeKind::Failed, Verdict::Failed),
        (OutcomeKind::Rejected, Verdict::Rejected),
        (OutcomeKind::Unknown, Verdict::Unknown),
    ] {
        assert_eq!(
            verdict(kind, targets(Some(1), Some(1)), &measured),
            Some((expected, vec![]))
        );
    }
    assert_eq!(
        verdict(OutcomeKind::Submitted, targets(None, None), &measured),
        None
    );
    assert_eq!(
        verdict(OutcomeKind::DryRun, targets(None, None), &measured),
        None
    );
    assert_eq!(
        serde_json::to_value(Verdict::MissedTarget).unwrap(),
        "MISSED_TARGET"
    );
    assert_eq!(serde_json::to_value(Missed::Rto).unwrap(), "rto");
}

pub(super) fn outcome(kind: OutcomeKind, started: &str) -> Outcome {
    let started_at = at(started);
    Outcome {
        outcome: kind,
        request_id: Some("drill-2026-12".into()),
        trigger: Trigger::Schedule,
        group_id: Some(format!("{:024x}", 2)),
        cluster_name: Some("orders".into()),
        backup_type: Some("legacy".into()),
        restore: Some(json!({"snapshotId": format!("{:024x}", 7), "delivery": {
            "methodName": "AUTOMATED_RESTORE", "targetGroupId": format!("{:024x}", 1),
            "targetClusterName": "orders-drill"}})),
        atlas: Some(AtlasSummary {
            jobs: vec![JobSummary {
                id: "job-1".into(),
                batch_id: None,
                status_name: Some("FINISHED".into()),
                target_cluster_name: Some("orders-drill".into()),
                delivery_status_name: None,
            }],
            ..AtlasSummary::default()
        }),
        errors: vec![],
        requested_by: Some("scheduler".into()),
        approved_by: Some("ops-lead".into()),
        reason: Some("monthly drill".into()),
        started_at,
        finished_at: started_at + Duration::minutes(45),
        first: None,
        notified: None,
        duration_seconds: Some(42 * 60),
        drill: None,
        report_url: None,
    }
}

pub(crate) fn record(
    verdict: Verdict,
    started: &str,
    rto: Option<u64>,
    rpo: Option<u64>,
) -> EvidenceRecord {
    let kind = match verdict {
        Verdict::Passed | Verdict::MissedTarget => OutcomeKind::Finished,
        Verdict::Broken => OutcomeKind::Broken,
        Verdict::Stalled => OutcomeKind::Stalled,
        Verdict::Failed => OutcomeKind::Failed,
        Verdict::Rejected => OutcomeKind::Rejected,
        Verdict::Unknown => OutcomeKind::Unknown,
    };
    let mut outcome = outcome(kind, started);
    outcome.drill = Some(DrillFigures {
        name: "orders-monthly".into(),
        rto_target_minutes: Some(120),
        rpo_target_minutes: Some(1440),
        restore_point_time: Some(at(started) - Duration::hours(6)),
        rpo_seconds: rpo,
        rto_seconds: rto,
        verdict: Some(verdict.as_str().into()),
        missed: if verdict == Verdict::MissedTarget {
            vec!["rto".into()]
        } else {
            vec![]
        },
    });
    EvidenceRecord::of(&outcome).unwrap()
}

#[test]
fn measuring_an_ended_drill_fills_its_figures_and_verdict() {
    let mut finished = outcome(OutcomeKind::Finished, "2026-12-01T10:00:00Z");
    assert_eq!(measure(&finished), None, "no drill");
    finished.drill = Some(DrillFigures {
        name: "orders-monthly".into(),
        rto_target_minutes: Some(30),
        rpo_target_minutes: None,
        restore_point_time: Some(at("2026-12-01T03:50:00Z")),
        ..DrillFigures::default()
    });
    let figures = measure(&finished).unwrap();
    assert_eq!(figures.rto_seconds, Some(42 * 60));
    assert_eq!(figures.rpo_seconds, Some(6 * 3600 + 600));
    assert_eq!(figures.verdict.as_deref(), Some("MISSED_TARGET"));
    assert_eq!(figures.missed, vec!["rto".to_owned()]);
    let mut dry = finished.clone();
    dry.outcome = OutcomeKind::DryRun;
    assert_eq!(measure(&dry), None, "a dry run ends no drill");
    assert_eq!(EvidenceRecord::of(&dry), None, "and leaves no evidence");
    let mut failed = finished.clone();
    failed.outcome = OutcomeKind::Failed;
    failed.duration_seconds = None;
    let figures = measure(&failed).unwrap();
    assert_eq!(
        (figures.verdict.as_deref(), figures.rto_seconds),
        (Some("FAILED"), None)
    );
}

#[test]
fn the_evidence_record_holds_the_people_the_jobs_and_the_figures() {
    let record = record(
        Verdict::Passed,
        "2026-12-01T10:00:00Z",
        Some(2520),
        Some(22_200),
    );
    let value = serde_json::to_value(&record).unwrap();
    assert_eq!(value["drill"], "orders-monthly");
    assert_eq!(value["startedAt"], "2026-12-01T10:00:00.000000Z");
    assert_eq!(value["verdict"], "PASSED");
    assert_eq!(value["outcome"], "FINISHED");
    assert_eq!(value["trigger"], "schedule");
    assert_eq!(value["atlasJobIds"], json!(["job-1"]));
    assert_eq!(value["requestedBy"], "scheduler");
    assert_eq!(value["approvedBy"], "ops-lead");
    assert_eq!(value["reason"], "monthly drill");
    assert_eq!(value["rtoSeconds"], 2520);
    assert_eq!(value["rpoSeconds"], 22_200);
    assert_eq!(value["rtoTargetMinutes"], 120);
    assert_eq!(value["restorePointTime"], "2026-12-01T04:00:00Z");
    assert_eq!(value["target"]["targetClusterName"], "orders-drill");
    assert!(value.get("missed").is_none());
    let back: EvidenceRecord = serde_json::from_value(value).unwrap();
    assert_eq!(back, record);
    assert!(
        record
            .source_to_target()
            .ends_with("/orders → 000000000000000000000001/orders-drill")
    );
}

#[test]
fn sort_keys_order_as_times_do() {
    let a = sort_key(at("2026-12-01T10:00:00Z"));
    let b = sort_key(at("2026-12-01T10:00:00.5Z"));
    let c = sort_key(at("2026-12-01T10:00:01Z"));
    assert!(a < b && b < c, "{a} {b} {c}");
    assert_eq!(before_key("2026-12-01T11:00:00+01:00"), Some(a));
    assert_eq!(before_key("last week"), None);
}

#[test]
fn durations_read_as_people_say_them() {
    assert_eq!(human_duration(45), "45 s");
    assert_eq!(human_duration(42 * 60 + 10), "42 min");
    assert_eq!(human_duration(66), "1 min 6 s");
    assert_eq!(human_duration(120), "2 min");
    assert_eq!(human_duration(6 * 3600 + 10 * 60), "6 h 10 min");
    assert_eq!(human_duration(2 * 3600), "2 h");
    assert_eq!(human_duration(86_400 * 2 + 3 * 3600), "2 d 3 h");
    assert_eq!(human_duration(86_400), "1 d");
}

/// The two newest drills of the history the summary and report tests share: a broken one and
/// one that missed its RPO target.
fn broken_then_missed() -> Vec<EvidenceRecord> {
    vec![
        record(
            Verdict::Broken,
            "2026-12-03T10:00:00Z",
            Some(600),
            Some(100),
        ),
        record(
            Verdict::MissedTarget,
            "2026-12-02T10:00:00Z",
            Some(9000),
            Some(300),
        ),
    ]
}

#[test]
fn the_summary_counts_passes_and_takes_the_figures() {
    let mut records = broken_then_missed();
    records.push(record(
        Verdict::Passed,
        "2026-12-01T10:00:00Z",
        Some(2520),
        Some(200),
    ));
    records.push(record(
        Verdict::Failed,
        "2026-11-30T10:00:00Z",
        None,
        Some(50),
    ));
    let summary = Summary::of(&records);
    assert_eq!(summary.count, 4);
    assert_eq!(summary.passed, 1);
    assert_eq!(summary.pass_rate, Some(0.25));
    assert_eq!(summary.rto_seconds_median, Some(2520));
    assert_eq!(summary.rto_seconds_p90, Some(9000));
    assert_eq!(summary.rto_seconds_max, Some(9000));
    assert_eq!(summary.rpo_seconds_max, Some(300));
    assert_eq!(
        summary.last_passed_at.as_deref(),
        Some("2026-12-01T10:00:00.000000Z")
    );
    let value = serde_json::to_value(&summary).unwrap();
    for field in [
        "count",
        "passed",
        "passRate",
        "rtoSecondsMedian",
        "rtoSecondsP90",
        "rtoSecondsMax",
        "rpoSecondsMax",
        "lastPassedAt",
    ] {
        assert!(value.get(field).is_some(), "{field} missing from {value}");
    }
    let empty = Summary::of(&[]);
    assert_eq!(
        (empty.count, empty.pass_rate, empty.rto_seconds_max),
        (0, None, None)
    );
}

#[test]
fn the_report_has_one_mark_per_drill_in_each_panel_and_one_row_each() {
    let mut records = broken_then_missed();
    records.push(record(Verdict::Failed, "2026-11-30T10:00:00Z", None, None));
    let page = report::render(
        "orders-monthly",
        &records,
        &Summary::of(&records),
        at("2026-12-04T00:00:00Z"),
    );
    assert_eq!(page.matches("<g class=\"mark\"").count(), 6);
    assert_eq!(page.matches("<tr class=\"drill\"").count(), 3);
    assert_eq!(page.matches("class=\"target\"").count(), 6);
    assert!(page.contains("MISSED_TARGET (RTO)"));
    assert!(!page.contains("<script"));
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(page.contains("Content-Security-Policy"));
    let empty = report::render(
        "orders-monthly",
        &[],
        &Summary::of(&[]),
        at("2026-12-04T00:00:00Z"),
    );
    assert!(empty.contains("No drill of this name"));
}

#[test]
fn every_value_in_the_report_is_escaped() {
    let mut hostile = record(Verdict::Passed, "2026-12-01T10:00:00Z", Some(60), Some(60));
    hostile.reason = Some("<script>alert('x')</script> & \"quotes\"".into());
    hostile.requested_by = Some("<img src=https://evil.example/x>".into());
    let page = report::render(
        "orders-monthly",
        &[hostile],
        &Summary::default(),
        at("2026-12-04T00:00:00Z"),
    );
    assert!(!page.contains("<script>") && !page.contains("<img"));
    assert!(
        page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;")
    );
    assert_eq!(report::escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

#[test]
fn the_csv_has_a_header_and_a_row_per_drill_defused() {
    let mut r = record(
        Verdict::MissedTarget,
        "2026-12-02T10:00:00Z",
        Some(9000),
        Some(300),
    );
    r.reason = Some("=cmd|' /C calc'!A0, really".into());
    let text = csv::render(&[r]);
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines.len(), 3, "{text:?}");
    assert_eq!(lines[2], "");
    assert!(lines[0].starts_with("drill,startedAt,finishedAt,verdict,missed,outcome,rtoSeconds"));
    assert!(lines[1].starts_with("orders-monthly,2026-12-02T10:00:00.000000Z,2026-12-02T10:45:00.000000Z,MISSED_TARGET,rto,FINISHED,9000,120,300,1440,"));
    assert!(
        lines[1].ends_with(",\"'=cmd|' /C calc'!A0, really\""),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(",schedule,"));
}

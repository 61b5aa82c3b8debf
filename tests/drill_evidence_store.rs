//! The drill evidence store (CONTRACT section 7), one suite run against both backends: the
//! in-memory store (`src/drill/memory.rs`) and the DynamoDB adapter (`src/aws/drill_evidence.rs`)
//! on moto. A record is written once (a retried put never changes it), the drill's records come
//! back newest first, a page at most 100 long, and `before` pages back.
mod support;

use atlas_restore_runner::aws::drill_evidence::DynamoDrillEvidence;
use atlas_restore_runner::drill::{EvidenceRecord, sort_key};
use atlas_restore_runner::ports::DrillEvidence;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

macro_rules! over_both_stores {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            use atlas_restore_runner::drill::memory::MemoryDrillEvidence;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(MemoryDrillEvidence::default()).await;
                }
            )+
        }

        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let stack = super::support::stack::Stack::start().await;
                    super::support::drills::create_drill_table(&stack.sdk).await;
                    let store = super::DynamoDrillEvidence::new(
                        &stack.sdk,
                        super::support::drills::DRILL_TABLE.into(),
                    );
                    super::$case(store).await;
                }
            )+
        }
    };
}

over_both_stores!(
    a_record_is_written_once_and_a_retry_changes_nothing,
    another_request_under_the_same_key_is_not_written,
    records_come_back_newest_first_per_drill_and_page_back_with_before,
    a_page_holds_at_most_100,
);

fn started(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_000_000, 123_456_000).unwrap() + Duration::minutes(minutes)
}

fn record(drill: &str, minutes: i64, request: &str, rto: u64) -> EvidenceRecord {
    serde_json::from_value(json!({
        "drill": drill, "startedAt": sort_key(started(minutes)), "requestId": request,
        "trigger": "schedule", "outcome": "FINISHED", "verdict": "PASSED",
        "groupId": "5e2211c17a3e5a48f5497de3", "clusterName": "orders", "backupType": "legacy",
        "target": {"targetGroupId": "5e2211c17a3e5a48f5497de3", "targetClusterName": "orders-drill"},
        "restore": {"snapshotId": "5f1c6b1e2a9b4f3d8c7e6a5b"},
        "restorePointTime": "2026-11-30T04:00:00Z", "atlasJobIds": ["j1"],
        "requestedBy": "scheduler", "approvedBy": null, "reason": "drill <&> \"quoted\"",
        "rtoTargetMinutes": 120, "rpoTargetMinutes": 1440, "rpoSeconds": 3600, "rtoSeconds": rto,
        "finishedAt": started(minutes + 40).to_rfc3339()
    }))
    .unwrap()
}

async fn a_record_is_written_once_and_a_retry_changes_nothing<S: DrillEvidence>(store: S) {
    let first = record("orders-monthly", 0, "req-1", 2520);
    assert!(store.put(&first).await.unwrap());
    let mut retried = first.clone();
    retried.rto_seconds = Some(9999);
    assert!(
        store.put(&retried).await.unwrap(),
        "the same request: already kept"
    );
    let kept = store.list("orders-monthly", None, 100).await.unwrap();
    assert_eq!(kept, vec![first], "the first write stays, field for field");
}

async fn another_request_under_the_same_key_is_not_written<S: DrillEvidence>(store: S) {
    let first = record("orders-monthly", 0, "req-1", 60);
    store.put(&first).await.unwrap();
    let other = record("orders-monthly", 0, "req-2", 60);
    assert!(!store.put(&other).await.unwrap());
    assert_eq!(
        store.list("orders-monthly", None, 100).await.unwrap(),
        vec![first]
    );
}

async fn records_come_back_newest_first_per_drill_and_page_back_with_before<S: DrillEvidence>(
    store: S,
) {
    for (i, minutes) in [0, 30, 60, 90].into_iter().enumerate() {
        store
            .put(&record("orders-monthly", minutes, &format!("m-{i}"), 60))
            .await
            .unwrap();
    }
    store
        .put(&record("orders-weekly", 45, "w-0", 60))
        .await
        .unwrap();
    let ids = |records: Vec<EvidenceRecord>| -> Vec<String> {
        records.into_iter().filter_map(|r| r.request_id).collect()
    };
    let all = store.list("orders-monthly", None, 100).await.unwrap();
    assert_eq!(ids(all.clone()), ["m-3", "m-2", "m-1", "m-0"]);
    let two = store.list("orders-monthly", None, 2).await.unwrap();
    assert_eq!(ids(two.clone()), ["m-3", "m-2"]);
    let back = store
        .list("orders-monthly", Some(&two[1].started_at), 100)
        .await
        .unwrap();
    assert_eq!(ids(back), ["m-1", "m-0"]);
    assert_eq!(
        ids(store.list("orders-weekly", None, 100).await.unwrap()),
        ["w-0"]
    );
    assert!(store.list("never", None, 100).await.unwrap().is_empty());
}

async fn a_page_holds_at_most_100<S: DrillEvidence>(store: S) {
    for i in 0..105 {
        store
            .put(&record("orders-daily", i, &format!("d-{i}"), 60))
            .await
            .unwrap();
    }
    let page = store.list("orders-daily", None, 500).await.unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!(page[0].request_id.as_deref(), Some("d-104"));
    let rest = store
        .list("orders-daily", Some(&page[99].started_at), 500)
        .await
        .unwrap();
    assert_eq!(rest.len(), 5);
}

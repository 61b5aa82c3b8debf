//! One behavioural suite for the idempotency store, written once over `S: IdempotencyStore` (and
//! the ledger's `acquire`) and run against both backends: the in-memory store
//! (`src/ledger/memory.rs`) and the DynamoDB adapter (`src/aws/idempotency.rs`) on moto, through
//! the AWS SDK. The two must behave identically, write for write; the DynamoDB adapter's
//! condition expressions are the reference (docs/IDEMPOTENCY.md).
//!
//! [`over_both_stores!`] expands every case into `memory::<case>` and `dynamodb::<case>`.
//! Times are whole seconds (DynamoDB keeps `expiration` in seconds and the other times in
//! milliseconds), except in the case that pins that precision itself.
mod support;

use std::sync::Arc;

use atlas_restore_runner::aws::idempotency::DynamoIdempotencyStore;
use atlas_restore_runner::command::TaskToken;
use atlas_restore_runner::ledger::{self, Acquired, Arrival, Ask, Decision};
use atlas_restore_runner::outcome::{Outcome, OutcomeKind, Trigger};
use atlas_restore_runner::ports::{
    CallbackSettled, FollowUpState, Fresh, IdempotencyRecord, IdempotencyStore, RecordState,
    SendingMark, StoredFinal, TaskCallback,
};
use chrono::{DateTime, Duration, Utc};
use support::stack::{Stack, TABLE};

/// Expands each case (an `async fn case<S: IdempotencyStore + 'static>(store: S)`) into a test
/// over a fresh `MemoryStore` and one over `DynamoIdempotencyStore` on its own moto server.
macro_rules! over_both_stores {
    ($($case:ident),+ $(,)?) => {
        mod memory {
            use atlas_restore_runner::ledger::memory::MemoryStore;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(MemoryStore::new()).await;
                }
            )+
        }

        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let stack = super::Stack::start().await;
                    let store =
                        super::DynamoIdempotencyStore::new(&stack.sdk, super::TABLE.into());
                    super::$case(store).await;
                }
            )+
        }
    };
}

over_both_stores!(
    put_fresh_takes_a_free_key_and_refuses_a_live_record,
    put_fresh_takes_an_expired_record_compared_in_whole_seconds,
    put_fresh_replacing_only_while_the_record_is_that_attempt,
    take_over_only_from_the_seen_attempt_keeping_start_history_mark_and_digest,
    take_over_only_in_the_state_it_was_decided_on,
    take_over_sets_the_expiry_it_is_given,
    a_superseded_attempt_can_no_longer_write,
    mark_sending_only_by_the_holding_attempt_while_in_progress,
    mark_sending_twice_keeps_the_earliest_mark_and_its_snapshot,
    a_later_mark_adds_a_snapshot_the_first_lacked_but_keeps_its_time,
    end_lease_lets_the_next_acquire_take_over_at_once_with_the_mark,
    store_outcome_sets_expiry_appends_history_and_keeps_the_digest,
    publication_has_one_claimant_at_a_time_and_ends_once_published,
    release_deletes_only_for_the_holding_attempt,
    start_follow_up_makes_check_1_due_and_only_extends_the_expiry,
    claim_check_runs_only_the_due_check_under_one_lease,
    store_final_only_by_the_due_check_and_once,
    times_are_kept_at_the_precision_dynamodb_keeps_them,
    acquire_takes_a_fresh_key,
    acquire_answers_the_same_command_in_flight_as_a_duplicate,
    acquire_takes_over_a_dead_attempt_with_its_sending_mark,
    acquire_by_a_delivery_claims_a_queued_record,
    acquire_by_a_delivery_without_a_record_is_dropped,
    acquire_of_another_command_is_key_reused,
    acquire_replaces_a_released_outcome_of_another_command,
    concurrent_acquires_of_a_free_key_leave_exactly_one_holder,
    concurrent_acquires_of_a_dead_attempt_leave_exactly_one_taker,
    a_task_token_is_kept_with_the_record_and_a_new_one_replaces_it,
    a_callback_is_settled_once_and_only_for_the_recorded_token,
    a_task_token_survives_a_takeover_and_the_outcomes,
);

const KEY: &str = "req-ledger-1";
const FP: &str = "fingerprint-a";
const OTHER_FP: &str = "fingerprint-b";

/// Now, in whole seconds.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("now is a valid time")
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn hours(n: i64) -> Duration {
    Duration::hours(n)
}

fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(0).expect("the epoch")
}

/// Attempt `attempt` of `fingerprint` starting at `now`: a 30 s lease, kept 6 h.
fn fresh<'a>(key: &'a str, fingerprint: &'a str, attempt: u64, now: DateTime<Utc>) -> Fresh<'a> {
    Fresh {
        key,
        fingerprint,
        dry_run: false,
        attempt,
        now,
        lease_until: now + secs(30),
        expires_at: now + hours(6),
    }
}

fn outcome(kind: OutcomeKind, at: DateTime<Utc>) -> Outcome {
    Outcome {
        outcome: kind,
        request_id: Some(KEY.into()),
        trigger: Trigger::Webhook,
        group_id: Some("5e2211c17a3e5a48f5497de3".into()),
        cluster_name: Some("orders".into()),
        backup_type: Some("legacy".into()),
        restore: None,
        atlas: None,
        errors: Vec::new(),
        requested_by: Some("U024BE7LH".into()),
        approved_by: Some("U0G9QF9C6".into()),
        reason: Some("drill".into()),
        started_at: at - secs(2),
        finished_at: at,
        first: None,
        notified: None,
        duration_seconds: None,
        drill: None,
        report_url: None,
    }
}

fn mark(since: DateTime<Utc>, snapshot: Option<&str>) -> SendingMark {
    SendingMark {
        since,
        snapshot_id: snapshot.map(str::to_owned),
    }
}

fn ask(arrival: Arrival, fingerprint: &str, now: DateTime<Utc>) -> Ask<'_> {
    Ask {
        key: KEY,
        fingerprint,
        dry_run: false,
        arrival,
        now,
    }
}

/// The record of `key`, which must exist.
async fn record<S: IdempotencyStore>(store: &S, key: &str) -> IdempotencyRecord {
    store
        .read(key)
        .await
        .expect("reading the record")
        .unwrap_or_else(|| panic!("no record for key {key:?}"))
}

/// Attempt 1 of `FP` takes `KEY` at `now` (put_fresh must succeed).
async fn take<S: IdempotencyStore>(store: &S, now: DateTime<Utc>) {
    assert!(
        store
            .put_fresh(&fresh(KEY, FP, 1, now), None)
            .await
            .unwrap(),
        "attempt 1 takes the free key"
    );
}

/// `KEY` holds a stored, unpublished `SUBMITTED` outcome of attempt 1 (claim until now + 60 s,
/// kept until now + 6 h).
async fn submitted<S: IdempotencyStore>(store: &S, now: DateTime<Utc>) {
    take(store, now).await;
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Submitted, now + secs(5)),
            now + secs(60),
            now + hours(6),
            None,
        )
        .await
        .expect("attempt 1 stores its outcome");
}

fn lease_of(record: &IdempotencyRecord) -> DateTime<Utc> {
    match &record.state {
        RecordState::InProgress { lease_until } => *lease_until,
        other => panic!("expected IN_PROGRESS, found {other:?}"),
    }
}

fn stored_of(record: &IdempotencyRecord) -> (&Outcome, bool) {
    match &record.state {
        RecordState::Completed { outcome, published } => (outcome, *published),
        other => panic!("expected COMPLETED, found {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// put_fresh
// ---------------------------------------------------------------------------------------------

async fn put_fresh_takes_a_free_key_and_refuses_a_live_record<S: IdempotencyStore + 'static>(
    store: S,
) {
    let now = t0();
    assert_eq!(store.read(KEY).await.unwrap(), None);
    take(&store, now).await;
    let expected = IdempotencyRecord {
        key: KEY.into(),
        fingerprint: FP.into(),
        dry_run: false,
        state: RecordState::InProgress {
            lease_until: now + secs(30),
        },
        attempt: 1,
        first_started_at: now,
        expires_at: now + hours(6),
        sending: None,
        publish_claim_until: None,
        hand_off_digest: None,
        history: Vec::new(),
        follow_up: None,
        final_outcome: None,
        task_callback: None,
    };
    assert_eq!(record(&store, KEY).await, expected);

    // Live while in progress, even past its lease (a takeover is not put_fresh's to make).
    for later in [now + secs(1), now + secs(3600)] {
        let taken = store
            .put_fresh(&fresh(KEY, OTHER_FP, 1, later), None)
            .await
            .unwrap();
        assert!(!taken, "a live record is not free at {later}");
    }
    // Live once completed.
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Submitted, now),
            now + secs(60),
            now + hours(6),
            None,
        )
        .await
        .unwrap();
    assert!(
        !store
            .put_fresh(&fresh(KEY, FP, 1, now + secs(10)), None)
            .await
            .unwrap()
    );
    let kept = record(&store, KEY).await;
    assert_eq!(
        (kept.fingerprint.as_str(), kept.attempt),
        (FP, 1),
        "a refused put leaves the record alone"
    );
    assert_eq!(kept.first_started_at, now);

    // A dry run's record says so.
    let dry = Fresh {
        dry_run: true,
        ..fresh("req-dry", FP, 1, now)
    };
    assert!(store.put_fresh(&dry, None).await.unwrap());
    assert!(record(&store, "req-dry").await.dry_run);
}

async fn put_fresh_takes_an_expired_record_compared_in_whole_seconds<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    let short = Fresh {
        lease_until: now + secs(10),
        expires_at: now + secs(100),
        ..fresh(KEY, FP, 1, now)
    };
    assert!(store.put_fresh(&short, None).await.unwrap());
    store
        .mark_sending(KEY, 1, &mark(now + secs(5), Some("snap-a")))
        .await
        .unwrap();
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Queued, now + secs(6)),
            now + secs(60),
            now + secs(100),
            Some("digest-a"),
        )
        .await
        .unwrap();

    // Expiration is compared in whole seconds: still live at any instant of its last second.
    for same_second in [
        now + secs(100),
        now + secs(100) + Duration::milliseconds(999),
    ] {
        let taken = store
            .put_fresh(&fresh(KEY, OTHER_FP, 1, same_second), None)
            .await
            .unwrap();
        assert!(
            !taken,
            "expiring at {}, not free at {same_second}",
            now + secs(100)
        );
    }
    let later = now + secs(101);
    assert!(
        store
            .put_fresh(&fresh(KEY, OTHER_FP, 1, later), None)
            .await
            .unwrap(),
        "an expired record is free"
    );
    // The put replaces the whole item: nothing of the expired record stays.
    assert_eq!(
        record(&store, KEY).await,
        IdempotencyRecord {
            key: KEY.into(),
            fingerprint: OTHER_FP.into(),
            dry_run: false,
            state: RecordState::InProgress {
                lease_until: later + secs(30),
            },
            attempt: 1,
            first_started_at: later,
            expires_at: later + hours(6),
            sending: None,
            publish_claim_until: None,
            hand_off_digest: None,
            history: Vec::new(),
            follow_up: None,
            final_outcome: None,
            task_callback: None,
        }
    );
}

async fn put_fresh_replacing_only_while_the_record_is_that_attempt<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    take(&store, now).await;
    assert!(
        store
            .take_over(KEY, 1, now + secs(60), now + secs(60), now + hours(6))
            .await
            .unwrap()
    );
    let later = now + secs(10);
    for stale in [1, 3] {
        let replaced = store
            .put_fresh(&fresh(KEY, OTHER_FP, stale + 1, later), Some(stale))
            .await
            .unwrap();
        assert!(!replaced, "the record is attempt 2's, not {stale}'s");
    }
    let kept = record(&store, KEY).await;
    assert_eq!((kept.fingerprint.as_str(), kept.attempt), (FP, 2));

    assert!(
        store
            .put_fresh(&fresh(KEY, OTHER_FP, 3, later), Some(2))
            .await
            .unwrap()
    );
    let replaced = record(&store, KEY).await;
    assert_eq!(
        (
            replaced.fingerprint.as_str(),
            replaced.attempt,
            replaced.first_started_at
        ),
        (OTHER_FP, 3, later)
    );
    assert_eq!(lease_of(&replaced), later + secs(30));

    // Nothing to replace: refused, and nothing is written.
    assert!(
        !store
            .put_fresh(&fresh("req-absent", FP, 2, now), Some(1))
            .await
            .unwrap()
    );
    assert_eq!(store.read("req-absent").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// take_over
// ---------------------------------------------------------------------------------------------

async fn take_over_only_from_the_seen_attempt_keeping_start_history_mark_and_digest<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    take(&store, now).await;
    let sending = mark(now + secs(3), Some("snap-a"));
    store.mark_sending(KEY, 1, &sending).await.unwrap();
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Queued, now + secs(4)),
            now + secs(60),
            now + hours(7),
            Some("digest-a"),
        )
        .await
        .unwrap();
    let before = record(&store, KEY).await;

    for wrong in [0, 2, 7] {
        let taken = store
            .take_over(KEY, wrong, now + secs(100), now + secs(100), now + hours(8))
            .await
            .unwrap();
        assert!(!taken, "the record is attempt 1's, not {wrong}'s");
    }
    assert_eq!(
        record(&store, KEY).await,
        before,
        "a refused takeover writes nothing"
    );

    assert!(
        store
            .take_over(KEY, 1, now + secs(100), now + secs(100), now + hours(8))
            .await
            .unwrap()
    );
    assert_eq!(
        record(&store, KEY).await,
        IdempotencyRecord {
            state: RecordState::InProgress {
                lease_until: now + secs(100),
            },
            attempt: 2,
            expires_at: now + hours(8),
            publish_claim_until: None,
            ..before
        },
        "attempt 2 holds it; first start, mark, digest and history stay; the outcome is cleared"
    );
    assert!(
        !store
            .take_over(KEY, 1, now + secs(200), now + secs(200), now + hours(9))
            .await
            .unwrap(),
        "attempt 1 was already taken over"
    );
    assert_eq!(record(&store, KEY).await.attempt, 2);
    assert!(
        !store
            .take_over(
                "req-absent",
                1,
                now + secs(200),
                now + secs(200),
                now + hours(9)
            )
            .await
            .unwrap()
    );
    assert_eq!(store.read("req-absent").await.unwrap(), None);
}

async fn take_over_only_in_the_state_it_was_decided_on<S: IdempotencyStore + 'static>(store: S) {
    // Decided on "in progress past its lease" or "QUEUED": a holder still within its lease, or
    // one that stored its outcome after the read, keeps the key.
    let now = t0();
    take(&store, now).await;
    assert!(
        !store
            .take_over(KEY, 1, now + secs(10), now + secs(100), now + hours(6))
            .await
            .unwrap(),
        "within the lease (now + 30 s)"
    );
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Submitted, now + secs(40)),
            now + secs(100),
            now + hours(6),
            None,
        )
        .await
        .unwrap();
    let before = record(&store, KEY).await;
    assert!(
        !store
            .take_over(KEY, 1, now + secs(50), now + secs(100), now + hours(6))
            .await
            .unwrap(),
        "a slow attempt stored SUBMITTED after the lease ended"
    );
    assert_eq!(record(&store, KEY).await, before, "it keeps its outcome");
}

async fn take_over_sets_the_expiry_it_is_given<S: IdempotencyStore + 'static>(store: S) {
    // DynamoDB: `SET ... expiration = :expiration`, unconditionally; `acquire` passes the later
    // of the record's and its own.
    let now = t0();
    take(&store, now).await;
    assert_eq!(record(&store, KEY).await.expires_at, now + hours(6));
    assert!(
        store
            .take_over(KEY, 1, now + secs(100), now + secs(100), now + hours(2))
            .await
            .unwrap()
    );
    assert_eq!(record(&store, KEY).await.expires_at, now + hours(2));
    assert!(
        store
            .take_over(KEY, 2, now + secs(200), now + secs(200), now + hours(9))
            .await
            .unwrap()
    );
    assert_eq!(record(&store, KEY).await.expires_at, now + hours(9));
}

async fn a_superseded_attempt_can_no_longer_write<S: IdempotencyStore + 'static>(store: S) {
    let now = t0();
    take(&store, now).await;
    assert!(
        store
            .take_over(KEY, 1, now + secs(100), now + secs(100), now + hours(6))
            .await
            .unwrap()
    );
    let before = record(&store, KEY).await;

    store
        .mark_sending(KEY, 1, &mark(now + secs(5), None))
        .await
        .expect_err("attempt 1 may not mark: it must not send");
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Submitted, now + secs(5)),
            now + secs(60),
            now + hours(6),
            None,
        )
        .await
        .expect_err("attempt 1 may not store an outcome");
    store
        .end_lease(KEY, 1)
        .await
        .expect_err("attempt 1 may not end attempt 2's lease");
    store
        .release(KEY, 1)
        .await
        .expect("a release by a superseded attempt does nothing, without an error");
    assert_eq!(
        record(&store, KEY).await,
        before,
        "nothing attempt 1 tried was written"
    );

    // The holder still can.
    store
        .mark_sending(KEY, 2, &mark(now + secs(6), None))
        .await
        .expect("attempt 2 holds the key");
    assert_eq!(
        record(&store, KEY).await.sending,
        Some(mark(now + secs(6), None))
    );
}

// ---------------------------------------------------------------------------------------------
// mark_sending, end_lease
// ---------------------------------------------------------------------------------------------

async fn mark_sending_only_by_the_holding_attempt_while_in_progress<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    store
        .mark_sending(KEY, 1, &mark(now, None))
        .await
        .expect_err("no record: nothing to mark");
    assert_eq!(store.read(KEY).await.unwrap(), None, "no record was made");

    take(&store, now).await;
    store
        .mark_sending(KEY, 2, &mark(now, None))
        .await
        .expect_err("attempt 2 does not hold the key");
    assert_eq!(record(&store, KEY).await.sending, None);

    let first = mark(now + secs(1), Some("snap-a"));
    store.mark_sending(KEY, 1, &first).await.unwrap();
    assert_eq!(record(&store, KEY).await.sending, Some(first.clone()));

    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Submitted, now + secs(5)),
            now + secs(60),
            now + hours(6),
            None,
        )
        .await
        .unwrap();
    store
        .mark_sending(KEY, 1, &mark(now + secs(6), Some("snap-b")))
        .await
        .expect_err("COMPLETED: no attempt may send");
    assert_eq!(
        record(&store, KEY).await.sending,
        Some(first),
        "the mark stays with the outcome"
    );
}

async fn mark_sending_twice_keeps_the_earliest_mark_and_its_snapshot<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    take(&store, now).await;
    let first = mark(now + secs(5), Some("snap-a"));
    store.mark_sending(KEY, 1, &first).await.unwrap();
    for again in [
        mark(now + secs(10), Some("snap-b")),
        mark(now + secs(1), Some("snap-c")),
        mark(now + secs(20), None),
    ] {
        store.mark_sending(KEY, 1, &again).await.unwrap();
        assert_eq!(
            record(&store, KEY).await.sending,
            Some(first.clone()),
            "marked again with {again:?}"
        );
    }
    // A takeover's own mark does not move the earlier one either.
    assert!(
        store
            .take_over(KEY, 1, now + secs(100), now + secs(100), now + hours(6))
            .await
            .unwrap()
    );
    store
        .mark_sending(KEY, 2, &mark(now + secs(90), Some("snap-d")))
        .await
        .unwrap();
    assert_eq!(record(&store, KEY).await.sending, Some(first));
}

async fn a_later_mark_adds_a_snapshot_the_first_lacked_but_keeps_its_time<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    // DynamoDB keeps each attribute of the mark if it exists: `sendingSince =
    // if_not_exists(sendingSince, :since), sendingSnapshot = if_not_exists(sendingSnapshot,
    // :snapshot)`.
    let now = t0();
    take(&store, now).await;
    store
        .mark_sending(KEY, 1, &mark(now + secs(5), None))
        .await
        .unwrap();
    store
        .mark_sending(KEY, 1, &mark(now + secs(10), Some("snap-b")))
        .await
        .unwrap();
    assert_eq!(
        record(&store, KEY).await.sending,
        Some(mark(now + secs(5), Some("snap-b")))
    );
}

async fn end_lease_lets_the_next_acquire_take_over_at_once_with_the_mark<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    let run = ask(Arrival::Run, FP, now);
    let first = ledger::acquire(&store, &run, now + secs(600), now + hours(6))
        .await
        .unwrap();
    assert!(
        matches!(first, Acquired::Holds { attempt: 1, .. }),
        "{first:?}"
    );
    let sending = mark(now + secs(2), Some("snap-a"));
    store.mark_sending(KEY, 1, &sending).await.unwrap();

    let soon = ask(Arrival::Run, FP, now + secs(5));
    let in_flight = ledger::acquire(&store, &soon, now + secs(600), now + hours(6))
        .await
        .unwrap();
    assert!(
        matches!(
            &in_flight,
            Acquired::Held {
                decision: Decision::Duplicate { in_flight: true },
                ..
            }
        ),
        "within its lease: {in_flight:?}"
    );

    store.end_lease(KEY, 1).await.unwrap();
    assert_eq!(lease_of(&record(&store, KEY).await), epoch());
    store
        .end_lease(KEY, 2)
        .await
        .expect_err("attempt 2 does not hold the key");

    let next = ledger::acquire(&store, &soon, now + secs(605), now + hours(6))
        .await
        .unwrap();
    assert_eq!(
        next,
        Acquired::Holds {
            attempt: 2,
            first_started_at: now,
            sending: Some(sending),
            claimed_from_queue: false,
        }
    );
    let taken = record(&store, KEY).await;
    assert_eq!((taken.attempt, lease_of(&taken)), (2, now + secs(605)));
    store
        .end_lease(KEY, 1)
        .await
        .expect_err("attempt 1 was taken over");
    assert_eq!(lease_of(&record(&store, KEY).await), now + secs(605));

    // Not once an outcome is stored.
    store
        .store_outcome(
            KEY,
            2,
            &outcome(OutcomeKind::Submitted, now + secs(8)),
            now + secs(60),
            now + hours(6),
            None,
        )
        .await
        .unwrap();
    store
        .end_lease(KEY, 2)
        .await
        .expect_err("COMPLETED: no lease to end");
    assert_eq!(
        stored_of(&record(&store, KEY).await).0.outcome,
        OutcomeKind::Submitted
    );
}

// ---------------------------------------------------------------------------------------------
// store_outcome and publication
// ---------------------------------------------------------------------------------------------

async fn store_outcome_sets_expiry_appends_history_and_keeps_the_digest<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    take(&store, now).await;
    store
        .store_outcome(
            "req-absent",
            1,
            &outcome(OutcomeKind::Queued, now),
            now + secs(60),
            now + hours(6),
            None,
        )
        .await
        .expect_err("no record: nothing to store into");
    assert_eq!(store.read("req-absent").await.unwrap(), None);

    let queued = outcome(OutcomeKind::Queued, now + secs(1));
    store
        .store_outcome(
            KEY,
            1,
            &queued,
            now + secs(61),
            now + hours(7),
            Some("digest-a"),
        )
        .await
        .unwrap();
    let stored = record(&store, KEY).await;
    assert_eq!(stored_of(&stored), (&queued, false));
    assert_eq!(
        (
            stored.publish_claim_until,
            stored.expires_at,
            stored.hand_off_digest.as_deref(),
            stored.history.clone(),
        ),
        (
            Some(now + secs(61)),
            now + hours(7),
            Some("digest-a"),
            vec![OutcomeKind::Queued]
        )
    );

    // The delivery takes over and stores the next outcome: the history grows, the digest
    // stays, and the key lives from this outcome on (here: shorter than before).
    assert!(
        store
            .take_over(KEY, 1, now + secs(100), now + secs(100), now + hours(7))
            .await
            .unwrap()
    );
    let submitted = outcome(OutcomeKind::Submitted, now + secs(20));
    store
        .store_outcome(KEY, 2, &submitted, now + secs(80), now + hours(5), None)
        .await
        .unwrap();
    let stored = record(&store, KEY).await;
    assert_eq!(stored_of(&stored), (&submitted, false));
    assert_eq!(
        (
            stored.publish_claim_until,
            stored.expires_at,
            stored.hand_off_digest.as_deref(),
            stored.history.clone(),
        ),
        (
            Some(now + secs(80)),
            now + hours(5),
            Some("digest-a"),
            vec![OutcomeKind::Queued, OutcomeKind::Submitted]
        )
    );
    assert_eq!(stored.first_started_at, now);

    // Refused for the superseded attempt; nothing changes.
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Failed, now + secs(30)),
            now + secs(90),
            now + hours(9),
            Some("digest-b"),
        )
        .await
        .expect_err("attempt 1 was superseded");
    assert_eq!(record(&store, KEY).await, stored);
}

async fn publication_has_one_claimant_at_a_time_and_ends_once_published<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    assert!(
        !store
            .claim_publication(KEY, now, now + secs(60))
            .await
            .unwrap(),
        "no record: nothing to publish"
    );
    take(&store, now).await;
    assert!(
        !store
            .claim_publication(KEY, now + secs(1), now + secs(60))
            .await
            .unwrap(),
        "in progress: no outcome to publish"
    );
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Submitted, now + secs(5)),
            now + secs(60),
            now + hours(6),
            None,
        )
        .await
        .unwrap();

    // The storing attempt holds the right until now + 60 s (strictly before: not yet free).
    for during in [now + secs(30), now + secs(60)] {
        assert!(
            !store
                .claim_publication(KEY, during, during + secs(60))
                .await
                .unwrap(),
            "claimed until {} at {during}",
            now + secs(60)
        );
    }
    assert_eq!(
        record(&store, KEY).await.publish_claim_until,
        Some(now + secs(60))
    );
    assert!(
        store
            .claim_publication(KEY, now + secs(61), now + secs(120))
            .await
            .unwrap(),
        "the storing attempt's claim ended"
    );
    assert_eq!(
        record(&store, KEY).await.publish_claim_until,
        Some(now + secs(120))
    );
    assert!(
        !store
            .claim_publication(KEY, now + secs(62), now + secs(122))
            .await
            .unwrap(),
        "one claimant at a time"
    );

    // A failed publish gives the claim back: the next may claim at once.
    store.release_publication_claim(KEY).await.unwrap();
    assert_eq!(record(&store, KEY).await.publish_claim_until, Some(epoch()));
    assert!(
        store
            .claim_publication(KEY, now + secs(63), now + secs(123))
            .await
            .unwrap()
    );

    store.mark_published(KEY).await.unwrap();
    let published = record(&store, KEY).await;
    assert!(stored_of(&published).1, "marked published");
    for later in [now + secs(64), now + hours(1)] {
        assert!(
            !store
                .claim_publication(KEY, later, later + secs(60))
                .await
                .unwrap(),
            "published: nothing to claim"
        );
    }
    store.release_publication_claim(KEY).await.unwrap();
    assert!(
        !store
            .claim_publication(KEY, now + hours(2), now + hours(3))
            .await
            .unwrap(),
        "published, even with the claim given back"
    );

    store
        .release_publication_claim("req-absent")
        .await
        .expect_err("no record");
    store
        .mark_published("req-absent")
        .await
        .expect_err("no record");
    assert_eq!(store.read("req-absent").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// release
// ---------------------------------------------------------------------------------------------

async fn release_deletes_only_for_the_holding_attempt<S: IdempotencyStore + 'static>(store: S) {
    let now = t0();
    store
        .release("req-absent", 1)
        .await
        .expect("releasing a missing record is no error");
    take(&store, now).await;
    assert!(
        store
            .take_over(KEY, 1, now + secs(100), now + secs(100), now + hours(6))
            .await
            .unwrap()
    );
    for other in [1, 3] {
        store.release(KEY, other).await.unwrap();
        assert_eq!(
            record(&store, KEY).await.attempt,
            2,
            "attempt {other} may not free attempt 2's key"
        );
    }
    store
        .store_outcome(
            KEY,
            2,
            &outcome(OutcomeKind::Failed, now + secs(5)),
            now + secs(60),
            now + hours(6),
            None,
        )
        .await
        .unwrap();
    store.release(KEY, 2).await.unwrap();
    assert_eq!(store.read(KEY).await.unwrap(), None, "the key is free");
    take(&store, now + secs(10)).await;
}

// ---------------------------------------------------------------------------------------------
// The follow-up
// ---------------------------------------------------------------------------------------------

async fn start_follow_up_makes_check_1_due_and_only_extends_the_expiry<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    store
        .start_follow_up("req-absent", now + hours(10))
        .await
        .expect("no record: nothing to do, no error");
    assert_eq!(
        store.read("req-absent").await.unwrap(),
        None,
        "no record is made"
    );

    submitted(&store, now).await;
    store.start_follow_up(KEY, now + hours(10)).await.unwrap();
    let started = record(&store, KEY).await;
    assert_eq!(
        (started.follow_up.clone(), started.expires_at),
        (
            Some(FollowUpState {
                check: 1,
                lease_until: None
            }),
            now + hours(10)
        )
    );

    // Again, later: a later due check stays; the expiry moves only up.
    store.next_check(KEY, 1).await.unwrap();
    store.start_follow_up(KEY, now + hours(12)).await.unwrap();
    let again = record(&store, KEY).await;
    assert_eq!(
        (again.follow_up.map(|f| f.check), again.expires_at),
        (Some(2), now + hours(12))
    );
    store.start_follow_up(KEY, now + hours(1)).await.unwrap();
    let lower = record(&store, KEY).await;
    assert_eq!(
        (lower.follow_up.map(|f| f.check), lower.expires_at),
        (Some(2), now + hours(12))
    );

    // A record already kept longer still gets check 1 due, its expiry unchanged.
    let other = "req-long";
    assert!(
        store
            .put_fresh(&fresh(other, FP, 1, now), None)
            .await
            .unwrap()
    );
    store
        .store_outcome(
            other,
            1,
            &outcome(OutcomeKind::Submitted, now + secs(5)),
            now + secs(60),
            now + hours(30),
            None,
        )
        .await
        .unwrap();
    store.start_follow_up(other, now + hours(10)).await.unwrap();
    let long = record(&store, other).await;
    assert_eq!(
        (long.follow_up, long.expires_at),
        (
            Some(FollowUpState {
                check: 1,
                lease_until: None
            }),
            now + hours(30)
        )
    );
}

async fn claim_check_runs_only_the_due_check_under_one_lease<S: IdempotencyStore + 'static>(
    store: S,
) {
    let now = t0();
    assert_eq!(
        store
            .claim_check("req-absent", 1, now, now + secs(60))
            .await
            .unwrap(),
        None
    );
    // In progress, and a stored outcome that is not SUBMITTED: nothing to follow.
    take(&store, now).await;
    assert_eq!(
        store
            .claim_check(KEY, 1, now, now + secs(60))
            .await
            .unwrap(),
        None,
        "IN_PROGRESS"
    );
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Unknown, now + secs(5)),
            now + secs(60),
            now + hours(6),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_check(KEY, 1, now, now + secs(60))
            .await
            .unwrap(),
        None,
        "UNKNOWN is not followed"
    );
    store.release(KEY, 1).await.unwrap();

    // Check 1 may run before start_follow_up was recorded (the message is the proof); no other.
    submitted(&store, now).await;
    assert_eq!(
        store
            .claim_check(KEY, 2, now + secs(100), now + secs(200))
            .await
            .unwrap(),
        None,
        "check 2 is not due"
    );
    assert_eq!(record(&store, KEY).await.follow_up, None);
    let claimed = store
        .claim_check(KEY, 1, now + secs(100), now + secs(200))
        .await
        .unwrap()
        .expect("check 1 is due");
    assert_eq!(
        claimed.follow_up,
        Some(FollowUpState {
            check: 1,
            lease_until: Some(now + secs(200))
        })
    );
    assert_eq!(
        claimed,
        record(&store, KEY).await,
        "the claim answers the record"
    );

    // One lease at a time, until it ends (strictly after) or is given back.
    for during in [now + secs(150), now + secs(200)] {
        assert_eq!(
            store
                .claim_check(KEY, 1, during, during + secs(100))
                .await
                .unwrap(),
            None,
            "leased until {} at {during}",
            now + secs(200)
        );
    }
    assert!(
        store
            .claim_check(KEY, 1, now + secs(201), now + secs(300))
            .await
            .unwrap()
            .is_some(),
        "the lease ended"
    );
    store.release_check(KEY, 1).await.unwrap();
    assert_eq!(
        record(&store, KEY).await.follow_up,
        Some(FollowUpState {
            check: 1,
            lease_until: None
        })
    );
    assert!(
        store
            .claim_check(KEY, 1, now + secs(202), now + secs(400))
            .await
            .unwrap()
            .is_some(),
        "given back: claimable at once"
    );

    // The next check: check 1 is stale now; a stale release or next does nothing.
    store.next_check(KEY, 1).await.unwrap();
    assert_eq!(
        record(&store, KEY).await.follow_up,
        Some(FollowUpState {
            check: 2,
            lease_until: None
        })
    );
    assert_eq!(
        store
            .claim_check(KEY, 1, now + secs(500), now + secs(600))
            .await
            .unwrap(),
        None,
        "check 1 is stale"
    );
    assert!(
        store
            .claim_check(KEY, 2, now + secs(500), now + secs(600))
            .await
            .unwrap()
            .is_some()
    );
    let leased = record(&store, KEY).await;
    store.release_check(KEY, 1).await.unwrap();
    store.next_check(KEY, 1).await.unwrap();
    store.next_check(KEY, 3).await.unwrap();
    assert_eq!(
        record(&store, KEY).await,
        leased,
        "stale check numbers change nothing"
    );
    assert_eq!(
        leased.follow_up,
        Some(FollowUpState {
            check: 2,
            lease_until: Some(now + secs(600))
        })
    );

    // A stored final outcome not yet published: the redelivery may still claim (to publish).
    store
        .store_final(
            KEY,
            2,
            &outcome(OutcomeKind::Finished, now + secs(550)),
            now + hours(20),
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_check(KEY, 2, now + secs(601), now + secs(700))
            .await
            .unwrap()
            .is_some(),
        "the final outcome is not yet published"
    );
    store.mark_final_published(KEY).await.unwrap();
    let ended = record(&store, KEY).await;
    assert_eq!(
        ended.follow_up,
        Some(FollowUpState {
            check: 2,
            lease_until: None
        }),
        "publishing the final outcome ends the lease"
    );
    for check in [1, 2, 3] {
        assert_eq!(
            store
                .claim_check(KEY, check, now + secs(800), now + secs(900))
                .await
                .unwrap(),
            None,
            "no check {check} runs once the final outcome was published"
        );
    }
}

async fn store_final_only_by_the_due_check_and_once<S: IdempotencyStore + 'static>(store: S) {
    let now = t0();
    store
        .mark_final_published("req-absent")
        .await
        .expect_err("no record");
    submitted(&store, now).await;
    let finished = outcome(OutcomeKind::Finished, now + hours(1));
    store
        .store_final(KEY, 1, &finished, now + hours(20))
        .await
        .expect_err("no check is recorded as due");
    store
        .mark_final_published(KEY)
        .await
        .expect_err("no final outcome to mark");
    assert_eq!(record(&store, KEY).await.final_outcome, None);

    store.start_follow_up(KEY, now + hours(10)).await.unwrap();
    store.next_check(KEY, 1).await.unwrap();
    store
        .store_final(KEY, 1, &finished, now + hours(20))
        .await
        .expect_err("check 1 is stale");
    store
        .store_final(KEY, 3, &finished, now + hours(20))
        .await
        .expect_err("check 3 is not due");
    assert_eq!(record(&store, KEY).await.final_outcome, None);

    store
        .store_final(KEY, 2, &finished, now + hours(20))
        .await
        .unwrap();
    let stored = record(&store, KEY).await;
    assert_eq!(
        (
            stored.final_outcome.clone(),
            stored.expires_at,
            stored.history.clone()
        ),
        (
            Some(StoredFinal {
                outcome: Box::new(finished.clone()),
                published: false
            }),
            now + hours(20),
            vec![OutcomeKind::Submitted, OutcomeKind::Finished]
        )
    );
    assert_eq!(
        stored.history_so_far(),
        vec![OutcomeKind::Submitted],
        "an unpublished final outcome is not yet history"
    );
    assert_eq!(stored_of(&stored).0.outcome, OutcomeKind::Submitted);

    store
        .store_final(
            KEY,
            2,
            &outcome(OutcomeKind::Broken, now + hours(2)),
            now + hours(30),
        )
        .await
        .expect_err("a final outcome is stored already");
    assert_eq!(
        record(&store, KEY).await,
        stored,
        "the first final outcome stays"
    );

    store.mark_final_published(KEY).await.unwrap();
    let published = record(&store, KEY).await;
    assert_eq!(
        published.final_outcome,
        Some(StoredFinal {
            outcome: Box::new(finished.clone()),
            published: true
        })
    );
    assert_eq!(published.latest_outcome(), Some(&finished));
    assert_eq!(
        published.history_so_far(),
        vec![OutcomeKind::Submitted, OutcomeKind::Finished]
    );
}

// ---------------------------------------------------------------------------------------------
// Precision
// ---------------------------------------------------------------------------------------------

async fn times_are_kept_at_the_precision_dynamodb_keeps_them<S: IdempotencyStore + 'static>(
    store: S,
) {
    // `expiration` is epoch seconds; firstStartedAt, leaseUntil, publishClaimUntil,
    // sendingSince and followLease epoch milliseconds.
    let now = t0();
    let odd = |d: Duration| now + d + Duration::nanoseconds(123_456_789);
    let millis = |d: Duration| now + d + Duration::milliseconds(123);
    let fresh = Fresh {
        now: odd(Duration::zero()),
        lease_until: odd(secs(30)),
        expires_at: odd(hours(6)),
        ..fresh(KEY, FP, 1, now)
    };
    assert!(store.put_fresh(&fresh, None).await.unwrap());
    let taken = record(&store, KEY).await;
    assert_eq!(
        (taken.first_started_at, lease_of(&taken), taken.expires_at),
        (millis(Duration::zero()), millis(secs(30)), now + hours(6))
    );

    store
        .mark_sending(KEY, 1, &mark(odd(secs(1)), None))
        .await
        .unwrap();
    assert_eq!(
        record(&store, KEY).await.sending,
        Some(mark(millis(secs(1)), None))
    );
    assert!(
        store
            .take_over(KEY, 1, odd(secs(40)), odd(secs(40)), odd(hours(7)))
            .await
            .unwrap()
    );
    let taken_over = record(&store, KEY).await;
    assert_eq!(
        (lease_of(&taken_over), taken_over.expires_at),
        (millis(secs(40)), now + hours(7))
    );

    store
        .store_outcome(
            KEY,
            2,
            &outcome(OutcomeKind::Submitted, now + secs(5)),
            odd(secs(60)),
            odd(hours(8)),
            None,
        )
        .await
        .unwrap();
    let stored = record(&store, KEY).await;
    assert_eq!(
        (stored.publish_claim_until, stored.expires_at),
        (Some(millis(secs(60))), now + hours(8))
    );
    assert!(
        store
            .claim_publication(KEY, odd(secs(61)), odd(secs(120)))
            .await
            .unwrap()
    );
    assert_eq!(
        record(&store, KEY).await.publish_claim_until,
        Some(millis(secs(120)))
    );

    store.start_follow_up(KEY, odd(hours(9))).await.unwrap();
    assert_eq!(record(&store, KEY).await.expires_at, now + hours(9));
    let claimed = store
        .claim_check(KEY, 1, now, odd(secs(300)))
        .await
        .unwrap()
        .expect("check 1 is due");
    assert_eq!(
        claimed.follow_up,
        Some(FollowUpState {
            check: 1,
            lease_until: Some(millis(secs(300)))
        })
    );
    store
        .store_final(
            KEY,
            1,
            &outcome(OutcomeKind::Finished, now + hours(1)),
            odd(hours(10)),
        )
        .await
        .unwrap();
    assert_eq!(record(&store, KEY).await.expires_at, now + hours(10));
}

// ---------------------------------------------------------------------------------------------
// ledger::acquire end to end
// ---------------------------------------------------------------------------------------------

async fn acquire_takes_a_fresh_key<S: IdempotencyStore + 'static>(store: S) {
    let now = t0();
    for arrival in [Arrival::Run, Arrival::HandOff] {
        let key = format!("req-{arrival:?}");
        let ask = Ask {
            key: &key,
            ..ask(arrival, FP, now)
        };
        let acquired = ledger::acquire(&store, &ask, now + secs(30), now + hours(6))
            .await
            .unwrap();
        assert_eq!(
            acquired,
            Acquired::Holds {
                attempt: 1,
                first_started_at: now,
                sending: None,
                claimed_from_queue: false,
            },
            "{arrival:?}"
        );
        let taken = record(&store, &key).await;
        assert_eq!(
            (
                taken.fingerprint.as_str(),
                taken.attempt,
                lease_of(&taken),
                taken.expires_at
            ),
            (FP, 1, now + secs(30), now + hours(6))
        );
    }
    // The record outlives its lease by 5 minutes at least.
    let long = Ask {
        key: "req-long-lease",
        ..ask(Arrival::Run, FP, now)
    };
    ledger::acquire(&store, &long, now + hours(1), now + secs(60))
        .await
        .unwrap();
    assert_eq!(
        record(&store, "req-long-lease").await.expires_at,
        now + hours(1) + Duration::minutes(5)
    );
}

async fn acquire_answers_the_same_command_in_flight_as_a_duplicate<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    ledger::acquire(
        &store,
        &ask(Arrival::Run, FP, now),
        now + secs(30),
        now + hours(6),
    )
    .await
    .unwrap();
    let before = record(&store, KEY).await;
    for arrival in [Arrival::Run, Arrival::HandOff] {
        let again = ledger::acquire(
            &store,
            &ask(arrival, FP, now + secs(10)),
            now + secs(40),
            now + hours(6),
        )
        .await
        .unwrap();
        assert_eq!(
            again,
            Acquired::Held {
                record: Box::new(before.clone()),
                decision: Decision::Duplicate { in_flight: true },
            },
            "{arrival:?}"
        );
    }
    assert_eq!(
        record(&store, KEY).await,
        before,
        "a duplicate writes nothing"
    );
}

async fn acquire_takes_over_a_dead_attempt_with_its_sending_mark<S: IdempotencyStore + 'static>(
    store: S,
) {
    let now = t0();
    ledger::acquire(
        &store,
        &ask(Arrival::Run, FP, now),
        now + secs(30),
        now + hours(6),
    )
    .await
    .unwrap();
    let sending = mark(now + secs(3), Some("snap-a"));
    store.mark_sending(KEY, 1, &sending).await.unwrap();

    // Attempt 1 died: its lease passed.
    let later = now + secs(31);
    let acquired = ledger::acquire(
        &store,
        &ask(Arrival::Run, FP, later),
        later + secs(30),
        later + hours(6),
    )
    .await
    .unwrap();
    assert_eq!(
        acquired,
        Acquired::Holds {
            attempt: 2,
            first_started_at: now,
            sending: Some(sending.clone()),
            claimed_from_queue: false,
        }
    );
    let taken = record(&store, KEY).await;
    assert_eq!(
        (
            taken.attempt,
            lease_of(&taken),
            taken.expires_at,
            taken.sending
        ),
        (2, later + secs(30), later + hours(6), Some(sending))
    );
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Submitted, later),
            later + secs(60),
            later + hours(6),
            None,
        )
        .await
        .expect_err("the dead attempt may not store an outcome");
}

async fn acquire_by_a_delivery_claims_a_queued_record<S: IdempotencyStore + 'static>(store: S) {
    let now = t0();
    let handed = ledger::acquire(
        &store,
        &ask(Arrival::HandOff, FP, now),
        now + secs(30),
        now + hours(6),
    )
    .await
    .unwrap();
    assert!(
        matches!(handed, Acquired::Holds { attempt: 1, .. }),
        "{handed:?}"
    );

    // A delivery racing the webhook (still IN_PROGRESS, not yet QUEUED) may not run it.
    let early = ledger::acquire(
        &store,
        &ask(Arrival::Delivery, FP, now + secs(1)),
        now + secs(61),
        now + hours(6),
    )
    .await
    .unwrap();
    assert!(matches!(early, Acquired::Dropped(_)), "{early:?}");

    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Queued, now + secs(1)),
            now + secs(60),
            now + hours(6),
            Some("digest-a"),
        )
        .await
        .unwrap();
    let delivered = ledger::acquire(
        &store,
        &ask(Arrival::Delivery, FP, now + secs(5)),
        now + secs(65),
        now + hours(6),
    )
    .await
    .unwrap();
    assert_eq!(
        delivered,
        Acquired::Holds {
            attempt: 2,
            first_started_at: now,
            sending: None,
            claimed_from_queue: true,
        }
    );
    let claimed = record(&store, KEY).await;
    assert_eq!(
        (
            claimed.attempt,
            lease_of(&claimed),
            claimed.hand_off_digest.as_deref(),
            claimed.history.clone()
        ),
        (
            2,
            now + secs(65),
            Some("digest-a"),
            vec![OutcomeKind::Queued]
        )
    );

    // A second delivery of the same message finds it busy.
    let second = ledger::acquire(
        &store,
        &ask(Arrival::Delivery, FP, now + secs(6)),
        now + secs(66),
        now + hours(6),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            &second,
            Acquired::Held {
                decision: Decision::Busy,
                ..
            }
        ),
        "{second:?}"
    );
    assert_eq!(record(&store, KEY).await.attempt, 2);
}

async fn acquire_by_a_delivery_without_a_record_is_dropped<S: IdempotencyStore + 'static>(
    store: S,
) {
    let now = t0();
    let dropped = ledger::acquire(
        &store,
        &ask(Arrival::Delivery, FP, now),
        now + secs(30),
        now + hours(6),
    )
    .await
    .unwrap();
    assert!(matches!(dropped, Acquired::Dropped(_)), "{dropped:?}");
    assert_eq!(
        store.read(KEY).await.unwrap(),
        None,
        "a delivery makes no record"
    );
}

async fn acquire_of_another_command_is_key_reused<S: IdempotencyStore + 'static>(store: S) {
    let now = t0();
    submitted(&store, now).await;
    let before = record(&store, KEY).await;
    for arrival in [Arrival::Run, Arrival::HandOff] {
        let other = ledger::acquire(
            &store,
            &ask(arrival, OTHER_FP, now + secs(10)),
            now + secs(40),
            now + hours(6),
        )
        .await
        .unwrap();
        assert_eq!(
            other,
            Acquired::Held {
                record: Box::new(before.clone()),
                decision: Decision::KeyReused,
            },
            "{arrival:?}"
        );
    }
    assert_eq!(record(&store, KEY).await, before);
}

async fn acquire_replaces_a_released_outcome_of_another_command<S: IdempotencyStore + 'static>(
    store: S,
) {
    // A FAILED outcome releases its key; its release (after publishing) has not happened yet.
    let now = t0();
    take(&store, now).await;
    store
        .mark_sending(KEY, 1, &mark(now + secs(1), None))
        .await
        .unwrap();
    store
        .store_outcome(
            KEY,
            1,
            &outcome(OutcomeKind::Failed, now + secs(2)),
            now + secs(60),
            now + hours(6),
            None,
        )
        .await
        .unwrap();
    let later = now + secs(10);
    let acquired = ledger::acquire(
        &store,
        &ask(Arrival::Run, OTHER_FP, later),
        later + secs(30),
        later + hours(6),
    )
    .await
    .unwrap();
    assert_eq!(
        acquired,
        Acquired::Holds {
            attempt: 2,
            first_started_at: later,
            sending: None,
            claimed_from_queue: false,
        }
    );
    assert_eq!(
        record(&store, KEY).await,
        IdempotencyRecord {
            key: KEY.into(),
            fingerprint: OTHER_FP.into(),
            dry_run: false,
            state: RecordState::InProgress {
                lease_until: later + secs(30),
            },
            attempt: 2,
            first_started_at: later,
            expires_at: later + hours(6),
            sending: None,
            publish_claim_until: None,
            hand_off_digest: None,
            history: Vec::new(),
            follow_up: None,
            final_outcome: None,
            task_callback: None,
        },
        "a new record: nothing of the other command's stays"
    );
    // The old command's attempt cannot free the new one's key.
    store.release(KEY, 1).await.unwrap();
    assert_eq!(record(&store, KEY).await.fingerprint, OTHER_FP);
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

const RACERS: usize = 16;

/// `RACERS` tasks call `acquire` for `KEY` at `now` at the same moment.
async fn race<S: IdempotencyStore + 'static>(store: Arc<S>, now: DateTime<Utc>) -> Vec<Acquired> {
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            ledger::acquire(
                &*store,
                &ask(Arrival::Run, FP, now),
                now + secs(60),
                now + hours(6),
            )
            .await
            .expect("acquire")
        });
    }
    tasks.join_all().await
}

fn holders(results: &[Acquired]) -> Vec<u64> {
    results
        .iter()
        .filter_map(|r| match r {
            Acquired::Holds { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect()
}

fn all_others_in_flight(results: &[Acquired]) {
    for result in results {
        assert!(
            matches!(
                result,
                Acquired::Holds { .. }
                    | Acquired::Held {
                        decision: Decision::Duplicate { in_flight: true },
                        ..
                    }
            ),
            "{result:?}"
        );
    }
}

async fn concurrent_acquires_of_a_free_key_leave_exactly_one_holder<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let store = Arc::new(store);
    let now = t0();
    let results = race(store.clone(), now).await;
    assert_eq!(holders(&results), vec![1], "{results:?}");
    all_others_in_flight(&results);
    assert_eq!(record(&*store, KEY).await.attempt, 1);
}

async fn concurrent_acquires_of_a_dead_attempt_leave_exactly_one_taker<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let store = Arc::new(store);
    let now = t0();
    take(&*store, now - secs(120)).await;
    store
        .mark_sending(KEY, 1, &mark(now - secs(100), None))
        .await
        .unwrap();
    let results = race(store.clone(), now).await;
    assert_eq!(holders(&results), vec![2], "{results:?}");
    all_others_in_flight(&results);
    let taken = record(&*store, KEY).await;
    assert_eq!((taken.attempt, lease_of(&taken)), (2, now + secs(60)));
}

// ---------------------------------------------------------------------------------------------
// The Step Functions task token (CONTRACT section 8)
// ---------------------------------------------------------------------------------------------

fn token(text: &str) -> TaskToken {
    TaskToken::parse(text).expect("a task token")
}

async fn a_task_token_is_kept_with_the_record_and_a_new_one_replaces_it<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    // No record: nothing is written.
    store
        .set_task_token(KEY, &token("AAAA-first"))
        .await
        .unwrap();
    assert_eq!(store.read(KEY).await.unwrap(), None);

    submitted(&store, now).await;
    assert_eq!(record(&store, KEY).await.task_callback, None);
    store
        .set_task_token(KEY, &token("AAAA-first"))
        .await
        .unwrap();
    let first = record(&store, KEY).await;
    assert_eq!(
        first.task_callback,
        Some(TaskCallback {
            token: token("AAAA-first"),
            settled: None
        })
    );
    assert_eq!(first.pending_task_token(), Some(&token("AAAA-first")));

    // Reported; the same token again changes nothing, a new one replaces it, unsettled.
    let reported = CallbackSettled::Reported { at: now + secs(9) };
    assert!(
        store
            .settle_task_callback(KEY, &token("AAAA-first"), &reported)
            .await
            .unwrap()
    );
    store
        .set_task_token(KEY, &token("AAAA-first"))
        .await
        .unwrap();
    assert_eq!(
        record(&store, KEY).await.task_callback.unwrap().settled,
        Some(reported)
    );
    store
        .set_task_token(KEY, &token("BBBB-retried"))
        .await
        .unwrap();
    let replaced = record(&store, KEY).await;
    assert_eq!(
        replaced.task_callback,
        Some(TaskCallback {
            token: token("BBBB-retried"),
            settled: None
        })
    );
    // Nothing else of the record moved.
    assert_eq!(replaced.state, first.state);
    assert_eq!(replaced.history, first.history);
    assert_eq!(replaced.expires_at, first.expires_at);
}

async fn a_callback_is_settled_once_and_only_for_the_recorded_token<
    S: IdempotencyStore + 'static,
>(
    store: S,
) {
    let now = t0();
    submitted(&store, now).await;
    let refused = CallbackSettled::Refused {
        code: "TaskTimedOut".into(),
        at: now + secs(3),
    };
    // No token recorded: nothing to settle.
    assert!(
        !store
            .settle_task_callback(KEY, &token("AAAA-first"), &refused)
            .await
            .unwrap()
    );
    store.set_task_token(KEY, &token("BBBB-new")).await.unwrap();
    // Settling a token that was replaced fails: the new one still waits.
    assert!(
        !store
            .settle_task_callback(KEY, &token("AAAA-first"), &refused)
            .await
            .unwrap()
    );
    assert!(record(&store, KEY).await.pending_task_token().is_some());
    assert!(
        store
            .settle_task_callback(KEY, &token("BBBB-new"), &refused)
            .await
            .unwrap()
    );
    // Once settled, never again (a second reporter learns it lost).
    let reported = CallbackSettled::Reported { at: now + secs(4) };
    assert!(
        !store
            .settle_task_callback(KEY, &token("BBBB-new"), &reported)
            .await
            .unwrap()
    );
    let settled = record(&store, KEY).await;
    assert_eq!(
        settled.task_callback.as_ref().unwrap().settled,
        Some(refused)
    );
    assert_eq!(settled.pending_task_token(), None);
    // The time is kept to the millisecond.
    let at = now + Duration::milliseconds(1_234);
    store
        .set_task_token(KEY, &token("CCCC-third"))
        .await
        .unwrap();
    let reported = CallbackSettled::Reported { at };
    assert!(
        store
            .settle_task_callback(KEY, &token("CCCC-third"), &reported)
            .await
            .unwrap()
    );
    assert_eq!(
        record(&store, KEY).await.task_callback.unwrap().settled,
        Some(reported)
    );
}

async fn a_task_token_survives_a_takeover_and_the_outcomes<S: IdempotencyStore + 'static>(
    store: S,
) {
    let now = t0();
    take(&store, now).await;
    store
        .set_task_token(KEY, &token("AAAA-first"))
        .await
        .unwrap();
    // Attempt 1 dies; attempt 2 takes over, stores the outcome, follows, ends.
    assert!(
        store
            .take_over(KEY, 1, now + secs(31), now + secs(60), now + hours(6))
            .await
            .unwrap()
    );
    store
        .store_outcome(
            KEY,
            2,
            &outcome(OutcomeKind::Submitted, now + secs(40)),
            now + secs(100),
            now + hours(6),
            None,
        )
        .await
        .unwrap();
    store.mark_published(KEY).await.unwrap();
    store.start_follow_up(KEY, now + hours(60)).await.unwrap();
    let claimed = store
        .claim_check(KEY, 1, now + secs(50), now + secs(80))
        .await
        .unwrap()
        .expect("check 1 is due");
    assert_eq!(claimed.pending_task_token(), Some(&token("AAAA-first")));
    let finished = outcome(OutcomeKind::Finished, now + secs(70));
    store
        .store_final(KEY, 1, &finished, now + hours(60))
        .await
        .unwrap();
    store.mark_final_published(KEY).await.unwrap();
    let ended = record(&store, KEY).await;
    assert_eq!(ended.pending_task_token(), Some(&token("AAAA-first")));
    assert_eq!(ended.known_end(), Some(&finished));
    // A fresh record (the key freed and taken again) starts without a token.
    store.release(KEY, 2).await.unwrap();
    take(&store, now + secs(90)).await;
    assert_eq!(record(&store, KEY).await.task_callback, None);
}

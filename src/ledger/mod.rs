//! The life of a request's record, as one pure state machine (CONTRACT sections 3 and 4,
//! "Never twice"; docs/IDEMPOTENCY.md).
//!
//! A key's record is in one of these states:
//!
//! | state | the record says |
//! |---|---|
//! | free | no record, an expired one, or a released outcome of another command |
//! | queued | `QUEUED`: the webhook handed the command to the work queue |
//! | claimed | `IN_PROGRESS` within its lease: an attempt works on it now |
//! | sending since T | claimed, and that attempt (or an earlier one) may have sent the POST since T |
//! | outcome stored / published | `COMPLETED` with the first outcome, published or not yet |
//! | following / ended | a `SUBMITTED` request's follow-up checks, then its final outcome |
//!
//! Each trigger asks for the key in one way ([`Arrival`]); [`decide`] says what that arrival
//! gets from the record it found ([`Decision`]), and [`acquire`] carries the decision out
//! against a store with one conditional write, deciding again if the record changed under it.
//! The "sending since T" mark is written before every POST and kept until the record goes:
//! whoever acquires a record that carries it reconciles with Atlas before sending anything.

pub mod memory;

use chrono::{DateTime, Utc};

use crate::outcome::{Outcome, OutcomeKind};
use crate::ports::{DependencyError, IdempotencyStore};

/// How long a command may stay `QUEUED` before a re-sent webhook sends it to the work queue
/// again: longer than a webhook invocation lives, so the first hand-off had its chance.
pub const HAND_OFF_GRACE: chrono::Duration = chrono::Duration::seconds(120);

/// The write-ahead mark of a POST: an attempt was about to send the restore at `since`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendingMark {
    pub since: DateTime<Utc>,
    /// The snapshot a point chosen at run time (`latestSnapshot`) resolved to, so an attempt
    /// that takes over restores, and looks for, the same one.
    pub snapshot_id: Option<String>,
}

/// The state of one idempotency record.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordState {
    /// An attempt is working on the command until `lease_until` (its invocation's deadline).
    InProgress { lease_until: DateTime<Utc> },
    /// The command ended in `outcome`; `published` once it reached the topic.
    Completed {
        outcome: Box<Outcome>,
        published: bool,
    },
}

/// One idempotency record (one key).
#[derive(Clone, Debug, PartialEq)]
pub struct IdempotencyRecord {
    pub key: String,
    pub fingerprint: String,
    /// Whether the command holding the key is a dry run (not part of the fingerprint).
    pub dry_run: bool,
    pub state: RecordState,
    /// Counts attempts; a write by an attempt that has been superseded is refused.
    pub attempt: u64,
    /// When the first attempt started (a run-time point is chosen as of then).
    pub first_started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set before the first POST and kept: an attempt may have sent the restore since then.
    pub sending: Option<SendingMark>,
    /// Until when the attempt that stored the outcome (or a duplicate) holds the right to
    /// publish it.
    pub publish_claim_until: Option<DateTime<Utc>>,
    /// SHA-256 (hex) of the exact signed body the webhook handed to the work queue.
    pub hand_off_digest: Option<String>,
    /// The outcome kinds stored under this key so far, in order (`QUEUED`, `SUBMITTED`, ...).
    pub history: Vec<OutcomeKind>,
    /// Set once following a `SUBMITTED` outcome began (CONTRACT section 6).
    pub follow_up: Option<FollowUpState>,
    /// The final outcome of a followed request, once its end was seen.
    pub final_outcome: Option<StoredFinal>,
}

/// Where following a submitted request stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowUpState {
    /// The number of the check that is due: only the message carrying it may run it.
    pub check: u64,
    /// A delivery is running that check until then.
    pub lease_until: Option<DateTime<Utc>>,
}

/// A final outcome stored with the request's record.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredFinal {
    pub outcome: Box<Outcome>,
    pub published: bool,
}

impl IdempotencyRecord {
    /// The kinds of the request's outcomes so far, in order; a final outcome counts once it
    /// is published. Records written before the history was kept show their stored outcome.
    pub fn history_so_far(&self) -> Vec<OutcomeKind> {
        let mut history = self.history.clone();
        if history.is_empty()
            && let RecordState::Completed { outcome, .. } = &self.state
        {
            history.push(outcome.outcome);
        }
        if let Some(StoredFinal {
            outcome,
            published: false,
        }) = &self.final_outcome
            && history.last() == Some(&outcome.outcome)
        {
            history.pop();
        }
        history
    }

    /// What a status lookup answers: the final outcome once published, else the first.
    pub fn latest_outcome(&self) -> Option<&Outcome> {
        match (&self.final_outcome, &self.state) {
            (
                Some(StoredFinal {
                    outcome,
                    published: true,
                }),
                _,
            ) => Some(outcome),
            (_, RecordState::Completed { outcome, .. }) => Some(outcome),
            (_, RecordState::InProgress { .. }) => None,
        }
    }

    /// The stored outcome's kind, if one is stored.
    pub fn outcome_kind(&self) -> Option<OutcomeKind> {
        match &self.state {
            RecordState::Completed { outcome, .. } => Some(outcome.outcome),
            RecordState::InProgress { .. } => None,
        }
    }

    /// Whether the record still holds its key at `now` (DynamoDB deletes expired items lazily,
    /// up to days later: an expired record is no record).
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at >= now
    }

    /// Whether the command was handed to the work queue by a webhook.
    pub fn was_queued(&self) -> bool {
        self.history.contains(&OutcomeKind::Queued)
    }
}

/// How a trigger asks for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// A trigger that runs the command now: a schedule, an event, a direct invoke, or a
    /// webhook without a work queue.
    Run,
    /// A webhook handing the command to the work queue.
    HandOff,
    /// A delivery from the work queue: it may only run a record its webhook queued.
    Delivery,
}

/// One request for a key.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub dry_run: bool,
    pub arrival: Arrival,
    pub now: DateTime<Utc>,
}

/// What an arrival gets from the record it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The key is free: write a fresh record, replacing the one whose attempt was `replacing`
    /// (an expired record, or a released outcome of another command) if there is one.
    Take { replacing: Option<u64> },
    /// Take the record over from attempt `seen`: its attempt died past its lease, or (for a
    /// delivery) the webhook queued it. Reconcile first when it carries a sending mark.
    TakeOver { seen: u64 },
    /// Answer `DUPLICATE` from the record: its outcome is stored (publish it first if it never
    /// was), or another attempt is still working on it (`in_flight`).
    Duplicate { in_flight: bool },
    /// Answer the stored outcome of a command that does not keep its key (published first if
    /// it never was), then free the key.
    Repeat,
    /// Another command holds the key: `REJECTED` / `KEY_REUSED`.
    KeyReused,
    /// The webhook's hand-off looks lost (still `QUEUED` past the grace): send it again.
    HandOffAgain,
    /// A delivery with no queued record to claim: no Atlas call, the message is done.
    Drop(&'static str),
    /// A delivery whose record another delivery is working on: try again later.
    Busy,
}

/// What an arrival gets from `record` (None: no record). Pure: the whole policy of the key.
pub fn decide(record: Option<&IdempotencyRecord>, ask: &Ask<'_>) -> Decision {
    let Some(record) = record.filter(|r| r.is_live(ask.now)) else {
        return match ask.arrival {
            Arrival::Delivery => Decision::Drop(
                "no queued record for its key: released, expired, or never queued (a replayed or redriven message)",
            ),
            _ => Decision::Take {
                replacing: record.map(|r| r.attempt),
            },
        };
    };
    let released_outcome = record.outcome_kind().filter(|kind| !kind.keeps_key());
    if record.fingerprint != ask.fingerprint {
        return match (ask.arrival, released_outcome) {
            (Arrival::Delivery, _) => {
                Decision::Drop("its key is held by another command, or was released")
            }
            // An outcome that releases its key never blocks it (CONTRACT section 3).
            (_, Some(_)) => Decision::Take {
                replacing: Some(record.attempt),
            },
            (_, None) => Decision::KeyReused,
        };
    }
    if let Some(_kind) = released_outcome {
        // Stored but not yet released (its publication failed, or the release did).
        return match (record.dry_run == ask.dry_run, ask.arrival) {
            (true, _) => Decision::Repeat,
            (false, Arrival::Delivery) => {
                Decision::Drop("its key holds the outcome of a dry run of the same command")
            }
            (false, _) => Decision::Take {
                replacing: Some(record.attempt),
            },
        };
    }
    match &record.state {
        RecordState::InProgress { lease_until } => {
            let died = *lease_until < ask.now;
            match ask.arrival {
                _ if record.dry_run != ask.dry_run => Decision::Duplicate { in_flight: true },
                Arrival::Delivery if !record.was_queued() => {
                    Decision::Drop("its key is held by a command that was not queued")
                }
                Arrival::Delivery if !died => Decision::Busy,
                _ if died => Decision::TakeOver {
                    seen: record.attempt,
                },
                _ => Decision::Duplicate { in_flight: true },
            }
        }
        RecordState::Completed { outcome, .. } if outcome.outcome == OutcomeKind::Queued => {
            match ask.arrival {
                _ if record.dry_run != ask.dry_run => Decision::Duplicate { in_flight: true },
                Arrival::Delivery => Decision::TakeOver {
                    seen: record.attempt,
                },
                Arrival::HandOff if ask.now - outcome.finished_at > HAND_OFF_GRACE => {
                    Decision::HandOffAgain
                }
                _ => Decision::Duplicate { in_flight: true },
            }
        }
        RecordState::Completed { .. } => Decision::Duplicate { in_flight: false },
    }
}

/// What [`acquire`] came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Acquired {
    /// This attempt holds the key, as attempt `attempt` of a record first started at
    /// `first_started_at`. With `sending`, an earlier attempt may have sent the restore: look
    /// for its job before sending anything. A dead attempt is always taken over with one
    /// (its own mark, else its record's first start).
    Holds {
        attempt: u64,
        first_started_at: DateTime<Utc>,
        sending: Option<SendingMark>,
        /// The record was queued by a webhook and this is the delivery that claimed it.
        claimed_from_queue: bool,
    },
    /// The key is not this attempt's: answer as `decision` says from `record`.
    Held {
        record: Box<IdempotencyRecord>,
        decision: Decision,
    },
    /// A delivery that finds nothing it may run.
    Dropped(&'static str),
}

/// A fresh record for an attempt that takes a free key.
#[derive(Clone, Debug)]
pub struct Fresh<'a> {
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub dry_run: bool,
    pub attempt: u64,
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl IdempotencyRecord {
    /// The record a fresh write (`put_fresh`) creates: the attempt holds the key until its
    /// lease ends, nothing sent, nothing stored.
    pub fn fresh(fresh: &Fresh<'_>) -> IdempotencyRecord {
        IdempotencyRecord {
            key: fresh.key.to_owned(),
            fingerprint: fresh.fingerprint.to_owned(),
            dry_run: fresh.dry_run,
            state: RecordState::InProgress {
                lease_until: fresh.lease_until,
            },
            attempt: fresh.attempt,
            first_started_at: fresh.now,
            expires_at: fresh.expires_at,
            sending: None,
            publish_claim_until: None,
            hand_off_digest: None,
            history: Vec::new(),
            follow_up: None,
            final_outcome: None,
        }
    }
}

/// What an attempt holds once it took `record` over from attempt `seen`. An attempt that
/// died holding the key without a mark cannot have sent (the mark precedes every POST), unless
/// a version before the mark wrote the record: one list of the jobs since its first start
/// settles it, so such a record is taken over as one that may have sent since then.
fn taken_over(record: IdempotencyRecord, seen: u64) -> Acquired {
    let claimed_from_queue = record.outcome_kind() == Some(OutcomeKind::Queued);
    let sending = record.sending.or_else(|| {
        (!claimed_from_queue).then_some(SendingMark {
            since: record.first_started_at,
            snapshot_id: None,
        })
    });
    Acquired::Holds {
        attempt: seen + 1,
        first_started_at: record.first_started_at,
        sending,
        claimed_from_queue,
    }
}

/// How often [`acquire`] decides again when the record changed between its read and write.
const ACQUIRE_ROUNDS: usize = 4;

/// Asks for the key as `ask` says and carries the decision out: one conditional write when it
/// takes the key, none when it does not. A record that changed between the read and the write
/// is read and decided again.
pub async fn acquire<S: IdempotencyStore>(
    store: &S,
    ask: &Ask<'_>,
    lease_until: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<Acquired, DependencyError> {
    // A record must outlive its lease, or an attempt still in flight would look expired.
    let expires_at = expires_at.max(lease_until + chrono::Duration::minutes(5));
    let fresh = |attempt| Fresh {
        key: ask.key,
        fingerprint: ask.fingerprint,
        dry_run: ask.dry_run,
        attempt,
        now: ask.now,
        lease_until,
        expires_at,
    };
    let holds_fresh = |attempt| Acquired::Holds {
        attempt,
        first_started_at: ask.now,
        sending: None,
        claimed_from_queue: false,
    };
    // Most keys are new: one write, no read.
    if ask.arrival != Arrival::Delivery && store.put_fresh(&fresh(1), None).await? {
        return Ok(holds_fresh(1));
    }
    for _ in 0..ACQUIRE_ROUNDS {
        let record = store.read(ask.key).await?;
        match decide(record.as_ref(), ask) {
            Decision::Take { replacing } => {
                let attempt = replacing.map_or(1, |seen| seen + 1);
                if store.put_fresh(&fresh(attempt), replacing).await? {
                    return Ok(holds_fresh(attempt));
                }
            }
            Decision::TakeOver { seen } => {
                let Some(record) = record else { continue };
                if store
                    .take_over(
                        ask.key,
                        seen,
                        ask.now,
                        lease_until,
                        record.expires_at.max(expires_at),
                    )
                    .await?
                {
                    return Ok(taken_over(record, seen));
                }
            }
            Decision::Drop(why) => return Ok(Acquired::Dropped(why)),
            decision => {
                let Some(record) = record else { continue };
                return Ok(Acquired::Held {
                    record: Box::new(record),
                    decision,
                });
            }
        }
    }
    Err(DependencyError::new(
        "DynamoDB",
        format!(
            "the record of key {:?} changed under every attempt to take it; try again",
            ask.key
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Trigger;

    fn now() -> DateTime<Utc> {
        "2026-11-28T17:06:15Z".parse().unwrap()
    }

    fn outcome(kind: OutcomeKind, finished_at: DateTime<Utc>) -> Box<Outcome> {
        Box::new(Outcome {
            outcome: kind,
            request_id: Some("k".into()),
            trigger: Trigger::Webhook,
            group_id: None,
            cluster_name: None,
            backup_type: None,
            restore: None,
            atlas: None,
            errors: Vec::new(),
            requested_by: None,
            approved_by: None,
            reason: None,
            started_at: finished_at,
            finished_at,
            first: None,
            notified: None,
            duration_seconds: None,
            drill: None,
            report_url: None,
        })
    }

    fn record(state: RecordState) -> IdempotencyRecord {
        let mut record = IdempotencyRecord::fresh(&Fresh {
            key: "k",
            fingerprint: "fp",
            dry_run: false,
            attempt: 3,
            now: now() - chrono::Duration::hours(1),
            lease_until: now(),
            expires_at: now() + chrono::Duration::hours(6),
        });
        record.state = state;
        record
    }

    fn ask(arrival: Arrival) -> Ask<'static> {
        Ask {
            key: "k",
            fingerprint: "fp",
            dry_run: false,
            arrival,
            now: now(),
        }
    }

    const ALL: [Arrival; 3] = [Arrival::Run, Arrival::HandOff, Arrival::Delivery];

    fn died() -> RecordState {
        RecordState::InProgress {
            lease_until: now() - chrono::Duration::seconds(1),
        }
    }

    fn working() -> RecordState {
        RecordState::InProgress {
            lease_until: now() + chrono::Duration::seconds(30),
        }
    }

    fn queued(age: chrono::Duration) -> IdempotencyRecord {
        let mut queued = record(RecordState::Completed {
            outcome: outcome(OutcomeKind::Queued, now() - age),
            published: false,
        });
        queued.history = vec![OutcomeKind::Queued];
        queued
    }

    #[test]
    fn a_free_key_is_taken_but_never_by_a_delivery() {
        assert_eq!(
            decide(None, &ask(Arrival::Run)),
            Decision::Take { replacing: None }
        );
        assert_eq!(
            decide(None, &ask(Arrival::HandOff)),
            Decision::Take { replacing: None }
        );
        assert!(matches!(
            decide(None, &ask(Arrival::Delivery)),
            Decision::Drop(_)
        ));
        let mut expired = record(RecordState::Completed {
            outcome: outcome(OutcomeKind::Submitted, now()),
            published: true,
        });
        expired.expires_at = now() - chrono::Duration::seconds(1);
        assert_eq!(
            decide(Some(&expired), &ask(Arrival::Run)),
            Decision::Take { replacing: Some(3) }
        );
        assert!(matches!(
            decide(Some(&expired), &ask(Arrival::Delivery)),
            Decision::Drop(_)
        ));
    }

    #[test]
    fn a_dead_attempt_is_taken_over_by_every_trigger_but_a_delivery_of_an_unqueued_command() {
        let dead = record(died());
        assert_eq!(
            decide(Some(&dead), &ask(Arrival::Run)),
            Decision::TakeOver { seen: 3 }
        );
        assert_eq!(
            decide(Some(&dead), &ask(Arrival::HandOff)),
            Decision::TakeOver { seen: 3 }
        );
        assert!(matches!(
            decide(Some(&dead), &ask(Arrival::Delivery)),
            Decision::Drop(_)
        ));
        let mut dead_delivery = record(died());
        dead_delivery.history = vec![OutcomeKind::Queued];
        assert_eq!(
            decide(Some(&dead_delivery), &ask(Arrival::Delivery)),
            Decision::TakeOver { seen: 3 }
        );
    }

    #[test]
    fn a_working_attempt_is_answered_in_flight_or_busy() {
        let mut live = record(working());
        assert_eq!(
            decide(Some(&live), &ask(Arrival::Run)),
            Decision::Duplicate { in_flight: true }
        );
        live.history = vec![OutcomeKind::Queued];
        assert_eq!(decide(Some(&live), &ask(Arrival::Delivery)), Decision::Busy);
    }

    #[test]
    fn only_a_delivery_claims_a_queued_record_and_a_late_hand_off_is_sent_again() {
        let fresh = queued(chrono::Duration::seconds(10));
        assert_eq!(
            decide(Some(&fresh), &ask(Arrival::Delivery)),
            Decision::TakeOver { seen: 3 }
        );
        assert_eq!(
            decide(Some(&fresh), &ask(Arrival::Run)),
            Decision::Duplicate { in_flight: true }
        );
        assert_eq!(
            decide(Some(&fresh), &ask(Arrival::HandOff)),
            Decision::Duplicate { in_flight: true }
        );
        let late = queued(HAND_OFF_GRACE + chrono::Duration::seconds(1));
        assert_eq!(
            decide(Some(&late), &ask(Arrival::HandOff)),
            Decision::HandOffAgain
        );
    }

    #[test]
    fn another_command_gets_key_reused_unless_the_outcome_released_the_key() {
        let other = Ask {
            fingerprint: "other",
            ..ask(Arrival::Run)
        };
        for state in [
            working(),
            died(),
            RecordState::Completed {
                outcome: outcome(OutcomeKind::Submitted, now()),
                published: true,
            },
        ] {
            assert_eq!(decide(Some(&record(state)), &other), Decision::KeyReused);
        }
        let failed = record(RecordState::Completed {
            outcome: outcome(OutcomeKind::Failed, now()),
            published: false,
        });
        assert_eq!(
            decide(Some(&failed), &other),
            Decision::Take { replacing: Some(3) }
        );
        let delivered_other = Ask {
            fingerprint: "other",
            ..ask(Arrival::Delivery)
        };
        for arrival_record in [failed, queued(chrono::Duration::zero())] {
            assert!(matches!(
                decide(Some(&arrival_record), &delivered_other),
                Decision::Drop(_)
            ));
        }
    }

    #[test]
    fn a_released_outcome_is_repeated_for_the_same_command_and_dry_run_only() {
        let mut dry = record(RecordState::Completed {
            outcome: outcome(OutcomeKind::DryRun, now()),
            published: false,
        });
        dry.dry_run = true;
        let real = ask(Arrival::Run);
        assert_eq!(
            decide(Some(&dry), &real),
            Decision::Take { replacing: Some(3) },
            "the real run after a dry run whose publish failed"
        );
        let again = Ask {
            dry_run: true,
            ..real
        };
        assert_eq!(decide(Some(&dry), &again), Decision::Repeat);
    }

    #[test]
    fn a_stored_outcome_that_keeps_the_key_is_a_duplicate_for_every_arrival() {
        for kind in [OutcomeKind::Submitted, OutcomeKind::Unknown] {
            let stored = record(RecordState::Completed {
                outcome: outcome(kind, now()),
                published: false,
            });
            for arrival in ALL {
                assert_eq!(
                    decide(Some(&stored), &ask(arrival)),
                    Decision::Duplicate { in_flight: false },
                    "{kind:?} {arrival:?}"
                );
            }
        }
    }

    #[test]
    fn a_dry_run_never_takes_over_a_real_attempt() {
        let dry = Ask {
            dry_run: true,
            ..ask(Arrival::Run)
        };
        assert_eq!(
            decide(Some(&record(died())), &dry),
            Decision::Duplicate { in_flight: true }
        );
    }
}

//! An in-memory idempotency store with the DynamoDB adapter's conditional semantics, write for
//! write (tests/ledger_store.rs runs one behavioural suite over both), down to the precision of
//! the times it keeps and compares: `expiration` in epoch seconds, the others in epoch
//! milliseconds. For tests, the fuzz targets and local tools; nothing deployed uses it.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::ledger::{
    FollowUpState, Fresh, IdempotencyRecord, RecordState, SendingMark, StoredFinal,
};
use crate::outcome::{Outcome, OutcomeKind};
use crate::ports::{DependencyError, IdempotencyStore};

const SERVICE: &str = "DynamoDB";

/// Records by key, behind one lock: each method is one atomic conditional write, as one
/// DynamoDB request is.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<String, IdempotencyRecord>>,
    /// Every outcome ever stored (first and final), in order, for tests to read.
    log: Mutex<Vec<Outcome>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Every record, as stored.
    pub fn records(&self) -> Vec<IdempotencyRecord> {
        self.with(|records| records.values().cloned().collect())
    }

    /// Puts `record` in place as it is (a test's starting state).
    pub fn insert(&self, record: IdempotencyRecord) {
        self.with(|records| records.insert(record.key.clone(), record));
    }

    /// Every outcome stored so far, first and final ones, in the order they were stored.
    pub fn stored_outcomes(&self) -> Vec<Outcome> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn remember(&self, outcome: &Outcome) {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(outcome.clone());
    }

    fn with<T>(&self, change: impl FnOnce(&mut HashMap<String, IdempotencyRecord>) -> T) -> T {
        let mut records = self
            .records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut records)
    }

    /// Applies `change` to the record of `key` when `condition` holds for it; `false` when
    /// there is no record or the condition failed (DynamoDB's failed condition).
    fn update(
        &self,
        key: &str,
        condition: impl FnOnce(&IdempotencyRecord) -> bool,
        change: impl FnOnce(&mut IdempotencyRecord),
    ) -> bool {
        self.with(|records| match records.get_mut(key) {
            Some(record) if condition(record) => {
                change(record);
                true
            }
            _ => false,
        })
    }
}

fn superseded(key: &str, attempt: u64) -> DependencyError {
    DependencyError::new(
        SERVICE,
        format!("attempt {attempt} no longer holds key {key:?}: a later attempt took it over"),
    )
}

fn gone(key: &str) -> DependencyError {
    DependencyError::new(SERVICE, format!("the record of key {key:?} is gone"))
}

fn stored(outcome: &Outcome) -> RecordState {
    RecordState::Completed {
        outcome: Box::new(outcome.clone()),
        published: false,
    }
}

/// DynamoDB compares `expiration` in whole seconds.
fn expired(record: &IdempotencyRecord, now: DateTime<Utc>) -> bool {
    record.expires_at.timestamp() < now.timestamp()
}

/// A time as DynamoDB keeps `expiration`: epoch seconds.
fn seconds(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(time.timestamp(), 0).unwrap_or(time)
}

/// A time as DynamoDB keeps every other time of the record (and compares it): epoch
/// milliseconds.
fn millis(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}

impl IdempotencyStore for MemoryStore {
    async fn read(&self, key: &str) -> Result<Option<IdempotencyRecord>, DependencyError> {
        Ok(self.with(|records| records.get(key).cloned()))
    }

    async fn put_fresh(
        &self,
        fresh: &Fresh<'_>,
        replacing: Option<u64>,
    ) -> Result<bool, DependencyError> {
        Ok(self.with(|records| {
            let free = match (records.get(fresh.key), replacing) {
                (None, None) => true,
                (Some(record), None) => expired(record, fresh.now),
                (Some(record), Some(seen)) => record.attempt == seen,
                (None, Some(_)) => false,
            };
            if free {
                // Stored at DynamoDB's precision: leases in milliseconds, the TTL in seconds.
                let mut record = IdempotencyRecord::fresh(fresh);
                record.state = RecordState::InProgress {
                    lease_until: millis(fresh.lease_until),
                };
                record.first_started_at = millis(fresh.now);
                record.expires_at = seconds(fresh.expires_at);
                records.insert(fresh.key.to_owned(), record);
            }
            free
        }))
    }

    async fn take_over(
        &self,
        key: &str,
        seen: u64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, DependencyError> {
        let now = millis(now);
        Ok(self.update(
            key,
            |record| {
                record.attempt == seen
                    && match &record.state {
                        RecordState::InProgress { lease_until } => *lease_until < now,
                        RecordState::Completed { outcome, .. } => {
                            outcome.outcome == OutcomeKind::Queued
                        }
                    }
            },
            |record| {
                record.attempt = seen + 1;
                record.state = RecordState::InProgress {
                    lease_until: millis(lease_until),
                };
                record.publish_claim_until = None;
                // As DynamoDB's `SET expiration = :expiration`: the caller passes the later of
                // the record's and its own.
                record.expires_at = seconds(expires_at);
            },
        ))
    }

    async fn mark_sending(
        &self,
        key: &str,
        attempt: u64,
        mark: &SendingMark,
    ) -> Result<(), DependencyError> {
        let marked = self.update(
            key,
            |record| {
                record.attempt == attempt && matches!(record.state, RecordState::InProgress { .. })
            },
            // As DynamoDB's `if_not_exists` on each attribute: the earliest time stays, and
            // so does the earliest snapshot, which a later mark may add when the first had none.
            |record| {
                let earliest = record.sending.get_or_insert_with(|| SendingMark {
                    since: millis(mark.since),
                    snapshot_id: None,
                });
                if earliest.snapshot_id.is_none() {
                    earliest.snapshot_id.clone_from(&mark.snapshot_id);
                }
            },
        );
        marked.then_some(()).ok_or_else(|| superseded(key, attempt))
    }

    async fn end_lease(&self, key: &str, attempt: u64) -> Result<(), DependencyError> {
        let ended = self.update(
            key,
            |record| {
                record.attempt == attempt && matches!(record.state, RecordState::InProgress { .. })
            },
            |record| {
                record.state = RecordState::InProgress {
                    lease_until: DateTime::from_timestamp_millis(0).unwrap_or_default(),
                }
            },
        );
        ended.then_some(()).ok_or_else(|| superseded(key, attempt))
    }

    async fn store_outcome(
        &self,
        key: &str,
        attempt: u64,
        outcome: &Outcome,
        publish_claim_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        hand_off_digest: Option<&str>,
    ) -> Result<(), DependencyError> {
        let stored_it = self.update(
            key,
            |record| record.attempt == attempt,
            |record| {
                record.state = stored(outcome);
                record.publish_claim_until = Some(millis(publish_claim_until));
                record.expires_at = seconds(expires_at);
                record.history.push(outcome.outcome);
                if let Some(digest) = hand_off_digest {
                    record.hand_off_digest = Some(digest.to_owned());
                }
            },
        );
        if stored_it {
            self.remember(outcome);
        }
        stored_it
            .then_some(())
            .ok_or_else(|| superseded(key, attempt))
    }

    async fn claim_publication(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, DependencyError> {
        Ok(self.update(
            key,
            |record| {
                matches!(
                    record.state,
                    RecordState::Completed {
                        published: false,
                        ..
                    }
                ) && record
                    .publish_claim_until
                    .is_none_or(|claim| claim < millis(now))
            },
            |record| record.publish_claim_until = Some(millis(until)),
        ))
    }

    async fn release_publication_claim(&self, key: &str) -> Result<(), DependencyError> {
        let released = self.update(
            key,
            |_| true,
            |record| record.publish_claim_until = DateTime::from_timestamp_millis(0),
        );
        released.then_some(()).ok_or_else(|| gone(key))
    }

    async fn mark_published(&self, key: &str) -> Result<(), DependencyError> {
        let marked = self.update(
            key,
            |_| true,
            |record| {
                if let RecordState::Completed { published, .. } = &mut record.state {
                    *published = true;
                }
            },
        );
        marked.then_some(()).ok_or_else(|| gone(key))
    }

    async fn release(&self, key: &str, attempt: u64) -> Result<(), DependencyError> {
        self.with(|records| {
            if records.get(key).is_some_and(|r| r.attempt == attempt) {
                records.remove(key);
            }
        });
        Ok(())
    }

    async fn start_follow_up(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DependencyError> {
        let extended = self.update(
            key,
            |record| record.expires_at.timestamp() < expires_at.timestamp(),
            |record| {
                record.expires_at = seconds(expires_at);
                record.follow_up.get_or_insert(FollowUpState {
                    check: 1,
                    lease_until: None,
                });
            },
        );
        if !extended {
            self.update(
                key,
                |record| record.follow_up.is_none(),
                |record| {
                    record.follow_up = Some(FollowUpState {
                        check: 1,
                        lease_until: None,
                    })
                },
            );
        }
        Ok(())
    }

    async fn claim_check(
        &self,
        key: &str,
        check: u64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, DependencyError> {
        let mut claimed = None;
        self.update(
            key,
            |record| {
                let due = match &record.follow_up {
                    Some(follow) => follow.check == check,
                    None => check == 1,
                };
                let free = record
                    .follow_up
                    .as_ref()
                    .and_then(|f| f.lease_until)
                    .is_none_or(|lease| lease < millis(now));
                record.outcome_kind() == Some(OutcomeKind::Submitted)
                    && due
                    && free
                    && record.final_outcome.as_ref().is_none_or(|f| !f.published)
            },
            |record| {
                record.follow_up = Some(FollowUpState {
                    check,
                    lease_until: Some(millis(lease_until)),
                });
                claimed = Some(record.clone());
            },
        );
        Ok(claimed)
    }

    async fn next_check(&self, key: &str, check: u64) -> Result<(), DependencyError> {
        self.update(
            key,
            |record| record.follow_up.as_ref().is_some_and(|f| f.check == check),
            |record| {
                record.follow_up = Some(FollowUpState {
                    check: check + 1,
                    lease_until: None,
                })
            },
        );
        Ok(())
    }

    async fn release_check(&self, key: &str, check: u64) -> Result<(), DependencyError> {
        self.update(
            key,
            |record| record.follow_up.as_ref().is_some_and(|f| f.check == check),
            |record| {
                if let Some(follow) = &mut record.follow_up {
                    follow.lease_until = None;
                }
            },
        );
        Ok(())
    }

    async fn store_final(
        &self,
        key: &str,
        check: u64,
        outcome: &Outcome,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DependencyError> {
        let stored_it = self.update(
            key,
            |record| {
                record.follow_up.as_ref().is_some_and(|f| f.check == check)
                    && record.final_outcome.is_none()
            },
            |record| {
                record.final_outcome = Some(StoredFinal {
                    outcome: Box::new(outcome.clone()),
                    published: false,
                });
                record.expires_at = seconds(expires_at);
                record.history.push(outcome.outcome);
            },
        );
        if stored_it {
            self.remember(outcome);
        }
        stored_it.then_some(()).ok_or_else(|| {
            DependencyError::new(
                SERVICE,
                format!("check {check} of key {key:?} is no longer the due one, or a final outcome is already stored"),
            )
        })
    }

    async fn mark_final_published(&self, key: &str) -> Result<(), DependencyError> {
        let marked = self.update(
            key,
            |record| record.final_outcome.is_some(),
            |record| {
                if let Some(stored) = &mut record.final_outcome {
                    stored.published = true;
                }
                if let Some(follow) = &mut record.follow_up {
                    follow.lease_until = None;
                }
            },
        );
        marked.then_some(()).ok_or_else(|| {
            DependencyError::new(
                SERVICE,
                format!("key {key:?} has no final outcome to mark published"),
            )
        })
    }
}

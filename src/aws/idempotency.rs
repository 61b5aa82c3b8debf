//! DynamoDB idempotency records (CONTRACT section 4; item schema in docs/IDEMPOTENCY.md).
//! Every write is conditional, so two attempts never both hold a key, and an attempt that was
//! superseded cannot overwrite the record of the one that replaced it.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, TimeZone, Utc};

use crate::command::TaskToken;
use crate::deadline::bounded;
use crate::outcome::{Outcome, OutcomeKind};
use crate::ports::{
    CallbackSettled, DependencyError, FollowUpState, Fresh, IdempotencyRecord, IdempotencyStore,
    RecordState, SendingMark, StoredFinal, TaskCallback,
};

const SERVICE: &str = "DynamoDB";
const IN_PROGRESS: &str = "IN_PROGRESS";
const COMPLETED: &str = "COMPLETED";

type Item = HashMap<String, AttributeValue>;

pub struct DynamoIdempotencyStore {
    client: Client,
    table: String,
}

impl DynamoIdempotencyStore {
    pub fn new(config: &aws_config::SdkConfig, table: String) -> DynamoIdempotencyStore {
        DynamoIdempotencyStore {
            client: Client::new(config),
            table,
        }
    }

    async fn get_record(&self, key: &str) -> Result<Option<IdempotencyRecord>, DependencyError> {
        let answer = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("reading the idempotency record", &e))?;
        answer
            .item
            .map(|item| record_from_item(key, &item))
            .transpose()
    }

    fn error<E, R>(&self, doing: &str, error: &SdkError<E, R>) -> DependencyError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        super::table_error(&self.table, "IDEMPOTENCY_TABLE", doing, error)
    }
}

impl IdempotencyStore for DynamoIdempotencyStore {
    async fn read(&self, key: &str) -> Result<Option<IdempotencyRecord>, DependencyError> {
        bounded(SERVICE, async { self.get_record(key).await }).await
    }

    async fn put_fresh(
        &self,
        fresh: &Fresh<'_>,
        replacing: Option<u64>,
    ) -> Result<bool, DependencyError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(fresh.key.to_owned()))
            .item(
                "fingerprint",
                AttributeValue::S(fresh.fingerprint.to_owned()),
            )
            .item("dryRun", AttributeValue::Bool(fresh.dry_run))
            .item("status", AttributeValue::S(IN_PROGRESS.into()))
            .item("attempt", number(fresh.attempt as i64))
            .item("firstStartedAt", number(fresh.now.timestamp_millis()))
            .item("leaseUntil", number(fresh.lease_until.timestamp_millis()))
            .item("expiration", number(fresh.expires_at.timestamp()));
        put = match replacing {
            // DynamoDB deletes expired items lazily (up to days later): an expired record is free.
            None => put
                .condition_expression("attribute_not_exists(id) OR expiration < :now")
                .expression_attribute_values(":now", number(fresh.now.timestamp())),
            Some(seen) => put
                .condition_expression("attempt = :seen")
                .expression_attribute_values(":seen", number(seen as i64)),
        };
        self.try_send(put.send(), "taking the idempotency key")
            .await
    }

    async fn take_over(
        &self,
        key: &str,
        seen: u64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, DependencyError> {
        let update = self
            .update(key)
            .update_expression(
                "SET #status = :in_progress, attempt = :attempt, leaseUntil = :lease, \
                 expiration = :expiration \
                 REMOVE outcome, outcomeKind, published, publishClaimUntil",
            )
            // The state the takeover was decided on: a slow attempt that stored its outcome
            // after the read keeps it.
            .condition_expression(
                "attempt = :seen AND ((#status = :in_progress AND leaseUntil < :now) \
                 OR outcomeKind = :queued)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":now", number(now.timestamp_millis()))
            .expression_attribute_values(":queued", AttributeValue::S("QUEUED".into()))
            .expression_attribute_values(":attempt", number(seen as i64 + 1))
            .expression_attribute_values(":seen", number(seen as i64))
            .expression_attribute_values(":lease", number(lease_until.timestamp_millis()))
            .expression_attribute_values(":expiration", number(expires_at.timestamp()));
        self.try_send(update.send(), "taking over the idempotency key")
            .await
    }

    async fn mark_sending(
        &self,
        key: &str,
        attempt: u64,
        mark: &SendingMark,
    ) -> Result<(), DependencyError> {
        let mut update = self
            .update(key)
            .update_expression(match mark.snapshot_id {
                Some(_) => "SET sendingSince = if_not_exists(sendingSince, :since), sendingSnapshot = if_not_exists(sendingSnapshot, :snapshot)",
                None => "SET sendingSince = if_not_exists(sendingSince, :since)",
            })
            .condition_expression("attempt = :attempt AND #status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
            .expression_attribute_values(":attempt", number(attempt as i64))
            .expression_attribute_values(":since", number(mark.since.timestamp_millis()));
        if let Some(snapshot) = &mark.snapshot_id {
            update = update
                .expression_attribute_values(":snapshot", AttributeValue::S(snapshot.clone()));
        }
        self.must_send(update.send(), "marking the restore as being sent", || {
            superseded(key, attempt)
        })
        .await
    }

    async fn end_lease(&self, key: &str, attempt: u64) -> Result<(), DependencyError> {
        self.must_send(
            self.update(key)
                .update_expression("SET leaseUntil = :zero")
                .condition_expression("attempt = :attempt AND #status = :in_progress")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
                .expression_attribute_values(":attempt", number(attempt as i64))
                .expression_attribute_values(":zero", number(0))
                .send(),
            "ending the attempt's lease",
            || superseded(key, attempt),
        )
        .await
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
        let digest = if hand_off_digest.is_some() {
            ", handOffDigest = :digest"
        } else {
            ""
        };
        let mut update = with_outcome(self.update(key), outcome)?
            .update_expression(format!("SET #status = :completed, outcome = :outcome, outcomeKind = :kind, published = :false, publishClaimUntil = :claim, expiration = :expiration, {APPEND_HISTORY}{digest} REMOVE leaseUntil"))
            .expression_attribute_values(":claim", number(publish_claim_until.timestamp_millis()))
            .expression_attribute_values(":expiration", number(expires_at.timestamp()))
            .condition_expression("attempt = :attempt")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", AttributeValue::S(COMPLETED.into()))
            .expression_attribute_values(":attempt", number(attempt as i64));
        if let Some(digest) = hand_off_digest {
            update =
                update.expression_attribute_values(":digest", AttributeValue::S(digest.to_owned()));
        }
        self.must_send(update.send(), "storing the outcome", || {
            superseded(key, attempt)
        })
        .await
    }

    async fn claim_publication(
        &self,
        key: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, DependencyError> {
        self.try_send(self.update(key)
            .update_expression("SET publishClaimUntil = :until")
            .condition_expression("published = :false AND (attribute_not_exists(publishClaimUntil) OR publishClaimUntil < :now)")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now", number(now.timestamp_millis()))
            .expression_attribute_values(":until", number(until.timestamp_millis())).send(), "claiming the outcome's publication").await
    }

    async fn release_publication_claim(&self, key: &str) -> Result<(), DependencyError> {
        self.must_send(
            self.update(key)
                .update_expression("SET publishClaimUntil = :zero")
                .condition_expression("attribute_exists(id)")
                .expression_attribute_values(":zero", number(0))
                .send(),
            "releasing the outcome's publication",
            || gone(key),
        )
        .await
    }

    async fn mark_published(&self, key: &str) -> Result<(), DependencyError> {
        self.must_send(
            self.update(key)
                .update_expression("SET published = :true")
                .condition_expression("attribute_exists(id)")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .send(),
            "marking the outcome published",
            || gone(key),
        )
        .await
    }

    async fn release(&self, key: &str, attempt: u64) -> Result<(), DependencyError> {
        bounded(SERVICE, async {
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("id", AttributeValue::S(key.to_owned()))
                .condition_expression("attempt = :attempt")
                .expression_attribute_values(":attempt", number(attempt as i64))
                .send()
                .await;
            match deleted {
                // Already gone or held by a later attempt: either way not this attempt's to free.
                Ok(_) => Ok(()),
                Err(error) if is_condition_failure(&error) => Ok(()),
                Err(error) => Err(self.error("releasing the idempotency key", &error)),
            }
        })
        .await
    }

    async fn start_follow_up(
        &self,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DependencyError> {
        bounded(SERVICE, async {
            let extended = self
                .update(key)
                .update_expression(
                    "SET followCheck = if_not_exists(followCheck, :one), expiration = :expiration",
                )
                .condition_expression("attribute_exists(id) AND expiration < :expiration")
                .expression_attribute_values(":one", number(1))
                .expression_attribute_values(":expiration", number(expires_at.timestamp()))
                .send()
                .await;
            match extended {
                Ok(_) => return Ok(()),
                Err(error) if !is_condition_failure(&error) => {
                    return Err(self.error("recording the start of the follow-up", &error));
                }
                // Already kept long enough: only make sure a check is recorded as due.
                Err(_) => {}
            }
            let started = self
                .update(key)
                .update_expression("SET followCheck = :one")
                .condition_expression("attribute_exists(id) AND attribute_not_exists(followCheck)")
                .expression_attribute_values(":one", number(1))
                .send()
                .await;
            match started {
                Err(error) if !is_condition_failure(&error) => {
                    Err(self.error("recording the start of the follow-up", &error))
                }
                _ => Ok(()),
            }
        })
        .await
    }

    async fn claim_check(
        &self,
        key: &str,
        check: u64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, DependencyError> {
        bounded(SERVICE, async {
            // Check 1 may run before its start was recorded (recording it failed after the message
            // was sent): the message is the proof that following began.
            let due = if check == 1 {
                "(followCheck = :check OR attribute_not_exists(followCheck))"
            } else {
                "followCheck = :check"
            };
            let condition = format!(
                "attribute_exists(id) AND outcomeKind = :submitted AND {due} \
                 AND (attribute_not_exists(followLease) OR followLease < :now) \
                 AND (attribute_not_exists(finalOutcome) OR finalPublished = :false)"
            );
            let claimed = self
                .update(key)
                .update_expression("SET followCheck = :check, followLease = :lease")
                .condition_expression(condition)
                .expression_attribute_values(":check", number(check as i64))
                .expression_attribute_values(":submitted", AttributeValue::S("SUBMITTED".into()))
                .expression_attribute_values(":now", number(now.timestamp_millis()))
                .expression_attribute_values(":lease", number(lease_until.timestamp_millis()))
                .expression_attribute_values(":false", AttributeValue::Bool(false))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match claimed {
                Ok(answer) => answer
                    .attributes
                    .map(|item| record_from_item(key, &item))
                    .transpose(),
                Err(error) if is_condition_failure(&error) => Ok(None),
                Err(error) => Err(self.error("claiming a follow-up check", &error)),
            }
        })
        .await
    }

    async fn next_check(&self, key: &str, check: u64) -> Result<(), DependencyError> {
        bounded(SERVICE, async {
            self.update_check(
                key,
                check,
                "SET followCheck = :next REMOVE followLease",
                Some(check + 1),
                "recording the next follow-up check",
            )
            .await
        })
        .await
    }

    async fn release_check(&self, key: &str, check: u64) -> Result<(), DependencyError> {
        bounded(SERVICE, async {
            self.update_check(
                key,
                check,
                "REMOVE followLease",
                None,
                "giving a follow-up check back",
            )
            .await
        })
        .await
    }

    async fn store_final(
        &self,
        key: &str,
        check: u64,
        outcome: &Outcome,
        expires_at: DateTime<Utc>,
    ) -> Result<(), DependencyError> {
        bounded(SERVICE, async {
            let update = self.update(key);
            with_outcome(update, outcome)?
                .update_expression(format!("SET finalOutcome = :outcome, finalKind = :kind, finalPublished = :false, expiration = :expiration, {APPEND_HISTORY}"))
                .condition_expression("followCheck = :check AND attribute_not_exists(finalOutcome)")
                .expression_attribute_values(":expiration", number(expires_at.timestamp()))
                .expression_attribute_values(":check", number(check as i64))
                .send()
                .await
                .map_err(|error| {
                    if is_condition_failure(&error) {
                        DependencyError::new(SERVICE, format!("check {check} of key {key:?} is no longer the due one, or a final outcome is already stored"))
                    } else {
                        self.error("storing the final outcome", &error)
                    }
                })?;
            Ok(())
        })
        .await
    }

    async fn mark_final_published(&self, key: &str) -> Result<(), DependencyError> {
        self.must_send(
            self.update(key)
                .update_expression("SET finalPublished = :true REMOVE followLease")
                .condition_expression("attribute_exists(finalOutcome)")
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .send(),
            "marking the final outcome published",
            || gone(key),
        )
        .await
    }

    async fn set_task_token(&self, key: &str, token: &TaskToken) -> Result<(), DependencyError> {
        // A failed condition: no record, or this token is already the recorded one.
        self.try_send(
            self.update(key)
                .update_expression(
                    "SET taskToken = :token REMOVE callbackSettled, callbackSettledAt, callbackRefusal",
                )
                .condition_expression(
                    "attribute_exists(id) AND (attribute_not_exists(taskToken) OR taskToken <> :token)",
                )
                .expression_attribute_values(
                    ":token",
                    AttributeValue::S(token.as_secret_str().to_owned()),
                )
                .send(),
            "recording the task token",
        )
        .await
        .map(|_| ())
    }

    async fn settle_task_callback(
        &self,
        key: &str,
        token: &TaskToken,
        settled: &CallbackSettled,
    ) -> Result<bool, DependencyError> {
        let (how, at, refusal) = match settled {
            CallbackSettled::Reported { at } => (CALLBACK_REPORTED, at, None),
            CallbackSettled::Refused { code, at } => (CALLBACK_REFUSED, at, Some(code)),
        };
        let mut update = self
            .update(key)
            .update_expression(match refusal {
                Some(_) => {
                    "SET callbackSettled = :how, callbackSettledAt = :at, callbackRefusal = :code"
                }
                None => "SET callbackSettled = :how, callbackSettledAt = :at",
            })
            .condition_expression("taskToken = :token AND attribute_not_exists(callbackSettled)")
            .expression_attribute_values(
                ":token",
                AttributeValue::S(token.as_secret_str().to_owned()),
            )
            .expression_attribute_values(":how", AttributeValue::S(how.to_owned()))
            .expression_attribute_values(":at", number(at.timestamp_millis()));
        if let Some(code) = refusal {
            update = update.expression_attribute_values(":code", AttributeValue::S(code.clone()));
        }
        self.try_send(update.send(), "recording the task callback")
            .await
    }
}

/// `callbackSettled`: the end was reported to the recorded task token.
const CALLBACK_REPORTED: &str = "REPORTED";
/// `callbackSettled`: Step Functions refused the recorded token for good (`callbackRefusal`).
const CALLBACK_REFUSED: &str = "REFUSED";

impl DynamoIdempotencyStore {
    /// Sends one conditional request within the deadline in force: `false` when its condition
    /// failed, an error naming `doing` when DynamoDB failed.
    async fn try_send<T, E, R>(
        &self,
        request: impl Future<Output = Result<T, SdkError<E, R>>>,
        doing: &str,
    ) -> Result<bool, DependencyError>
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        // Boxed: an SDK request's future is large, and debug builds copy it at every await
        // that holds it (the test threads' stacks overflowed).
        let request = Box::pin(request);
        match bounded(SERVICE, async { Ok(request.await) }).await? {
            Ok(_) => Ok(true),
            Err(error) if is_condition_failure(&error) => Ok(false),
            Err(error) => Err(self.error(doing, &error)),
        }
    }

    /// Sends one conditional request whose condition must hold; `refused` says why it did not.
    async fn must_send<T, E, R>(
        &self,
        request: impl Future<Output = Result<T, SdkError<E, R>>>,
        doing: &str,
        refused: impl FnOnce() -> DependencyError,
    ) -> Result<(), DependencyError>
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        match self.try_send(request, doing).await? {
            true => Ok(()),
            false => Err(refused()),
        }
    }

    /// An `UpdateItem` of the record of `key`.
    fn update(&self, key: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
    }

    /// An update of the follow-up state that holds only while `check` is the due one; a
    /// failed condition means another delivery moved on, which is not an error.
    async fn update_check(
        &self,
        key: &str,
        check: u64,
        expression: &str,
        next: Option<u64>,
        doing: &str,
    ) -> Result<(), DependencyError> {
        let mut update = self
            .update(key)
            .update_expression(expression)
            .condition_expression("followCheck = :check")
            .expression_attribute_values(":check", number(check as i64));
        if let Some(next) = next {
            update = update.expression_attribute_values(":next", number(next as i64));
        }
        match update.send().await {
            Ok(_) => Ok(()),
            Err(error) if is_condition_failure(&error) => {
                tracing::warn!(request_id = %key, check, "{doing}: check {check} is no longer the due one");
                Ok(())
            }
            Err(error) => Err(self.error(doing, &error)),
        }
    }
}

/// Appends `:kinds` to the record's history (see [`with_outcome`]).
const APPEND_HISTORY: &str = "history = list_append(if_not_exists(history, :empty), :kinds)";

/// The values an update storing `outcome` uses: `:outcome` (its JSON), `:kind`, `:false`, and
/// `:empty` and `:kinds` for [`APPEND_HISTORY`].
fn with_outcome(
    update: UpdateItemFluentBuilder,
    outcome: &Outcome,
) -> Result<UpdateItemFluentBuilder, DependencyError> {
    let json = serde_json::to_string(outcome).map_err(|e| {
        DependencyError::new(SERVICE, format!("the outcome could not be serialised: {e}"))
    })?;
    let kind = outcome.outcome.as_str();
    Ok(update
        .expression_attribute_values(":outcome", AttributeValue::S(json))
        .expression_attribute_values(":kind", AttributeValue::S(kind.to_owned()))
        .expression_attribute_values(":false", AttributeValue::Bool(false))
        .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
        .expression_attribute_values(
            ":kinds",
            AttributeValue::L(vec![AttributeValue::S(kind.to_owned())]),
        ))
}

fn gone(key: &str) -> DependencyError {
    DependencyError::new(SERVICE, format!("the record of key {key:?} is gone"))
}

fn superseded(key: &str, attempt: u64) -> DependencyError {
    DependencyError::new(
        SERVICE,
        format!("attempt {attempt} no longer holds key {key:?}: a later attempt took it over"),
    )
}

fn number(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

fn record_from_item(key: &str, item: &Item) -> Result<IdempotencyRecord, DependencyError> {
    let read = ItemReader { key, item };
    Ok(IdempotencyRecord {
        key: key.to_owned(),
        state: read.state()?,
        fingerprint: read
            .text("fingerprint")
            .ok_or_else(|| read.broken("no fingerprint"))?,
        dry_run: read.flag("dryRun").unwrap_or(false),
        sending: read.millis("sendingSince").map(|since| SendingMark {
            since,
            snapshot_id: read.text("sendingSnapshot"),
        }),
        publish_claim_until: read.millis("publishClaimUntil"),
        hand_off_digest: read.text("handOffDigest"),
        attempt: read
            .integer("attempt")
            .and_then(|a| u64::try_from(a).ok())
            .ok_or_else(|| read.broken("no attempt"))?,
        first_started_at: read
            .millis("firstStartedAt")
            .ok_or_else(|| read.broken("no firstStartedAt"))?,
        expires_at: read
            .integer("expiration")
            .and_then(|s| Utc.timestamp_opt(s, 0).single())
            .ok_or_else(|| read.broken("no expiration"))?,
        history: read.history(),
        follow_up: read
            .integer("followCheck")
            .and_then(|check| u64::try_from(check).ok())
            .map(|check| FollowUpState {
                check,
                lease_until: read.millis("followLease"),
            }),
        final_outcome: read.final_outcome()?,
        task_callback: read.task_callback(),
    })
}

/// Reads the attributes of one key's item.
struct ItemReader<'a> {
    key: &'a str,
    item: &'a Item,
}

impl ItemReader<'_> {
    fn broken(&self, what: &str) -> DependencyError {
        DependencyError::new(
            SERVICE,
            format!(
                "the idempotency record of key {:?} is malformed: {what}",
                self.key
            ),
        )
    }

    fn text(&self, name: &str) -> Option<String> {
        self.item.get(name).and_then(|v| v.as_s().ok()).cloned()
    }

    fn integer(&self, name: &str) -> Option<i64> {
        self.item
            .get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    }

    /// Epoch milliseconds.
    fn millis(&self, name: &str) -> Option<DateTime<Utc>> {
        self.integer(name)
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
    }

    fn flag(&self, name: &str) -> Option<bool> {
        self.item.get(name).and_then(|v| v.as_bool().ok()).copied()
    }

    /// `status`: in progress with its lease, or completed with its outcome.
    fn state(&self) -> Result<RecordState, DependencyError> {
        Ok(match self.text("status").as_deref() {
            Some(IN_PROGRESS) => RecordState::InProgress {
                lease_until: self
                    .millis("leaseUntil")
                    .ok_or_else(|| self.broken("no leaseUntil"))?,
            },
            Some(COMPLETED) => {
                let outcome: Outcome = serde_json::from_str(
                    &self
                        .text("outcome")
                        .ok_or_else(|| self.broken("no outcome"))?,
                )
                .map_err(|e| self.broken(&format!("unreadable outcome: {e}")))?;
                RecordState::Completed {
                    outcome: Box::new(outcome),
                    published: self.flag("published").unwrap_or(false),
                }
            }
            _ => return Err(self.broken("unknown status")),
        })
    }

    /// The kinds of the outcomes so far; any unreadable is left out.
    fn history(&self) -> Vec<OutcomeKind> {
        self.item
            .get("history")
            .and_then(|v| v.as_l().ok())
            .into_iter()
            .flatten()
            .filter_map(|kind| kind.as_s().ok())
            .filter_map(|kind| serde_json::from_value::<OutcomeKind>(kind.as_str().into()).ok())
            .collect()
    }

    /// `taskToken` and how reporting to it ended (`callbackSettled`, `callbackSettledAt`,
    /// `callbackRefusal`).
    fn task_callback(&self) -> Option<TaskCallback> {
        let token = TaskToken::parse(&self.text("taskToken")?)?;
        let at = self
            .millis("callbackSettledAt")
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let settled = match self.text("callbackSettled").as_deref() {
            Some(CALLBACK_REPORTED) => Some(CallbackSettled::Reported { at }),
            Some(CALLBACK_REFUSED) => Some(CallbackSettled::Refused {
                code: self.text("callbackRefusal").unwrap_or_default(),
                at,
            }),
            _ => None,
        };
        Some(TaskCallback { token, settled })
    }

    fn final_outcome(&self) -> Result<Option<StoredFinal>, DependencyError> {
        let Some(json) = self.text("finalOutcome") else {
            return Ok(None);
        };
        Ok(Some(StoredFinal {
            outcome: Box::new(
                serde_json::from_str(&json)
                    .map_err(|e| self.broken(&format!("unreadable final outcome: {e}")))?,
            ),
            published: self.flag("finalPublished").unwrap_or(false),
        }))
    }
}

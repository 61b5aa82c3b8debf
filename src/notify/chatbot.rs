//! The Amazon Q Developer (AWS Chatbot) custom notification of an outcome: its title,
//! description, next steps and metadata.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::{Facts, given, trigger_name, unique};
use crate::drill::human_duration;
use crate::outcome::{AtlasSummary, ErrorCode, JobSummary, Outcome, OutcomeKind};

/// Chatbot's limit for a custom notification's description is 8,000 characters; stay below.
pub const DESCRIPTION_MAX: usize = 7_900;
/// A readable title; the details belong in the description.
pub const TITLE_MAX: usize = 250;

/// How many jobs / problems / steps are listed before "and N more".
const LIST_MAX: usize = 25;
const STEPS_MAX: usize = 5;
/// Any one value taken from the outcome, in the chat form.
const VALUE_MAX: usize = 600;

// ---------------------------------------------------------------------------------------------
// The Chatbot custom notification

/// The custom notification, as Chatbot reads it.
pub(super) fn message(outcome: &Outcome, facts: &Facts<'_>) -> Value {
    let mut content = Map::new();
    content.insert("textType".into(), json!("client-markdown"));
    content.insert("title".into(), json!(title(outcome, facts)));
    content.insert("description".into(), json!(description(outcome, facts)));
    let steps = next_steps(outcome, facts);
    if !steps.is_empty() {
        content.insert("nextSteps".into(), json!(steps));
    }

    let mut metadata = Map::new();
    if let Some(id) = given(&outcome.request_id) {
        metadata.insert("threadId".into(), json!(id));
    }
    metadata.insert("summary".into(), json!(summary(outcome, facts)));
    metadata.insert("eventType".into(), json!(outcome.outcome.as_str()));
    metadata.insert(
        "additionalContext".into(),
        Value::Object(additional_context(outcome, facts)),
    );

    json!({
        "version": "1.0",
        "source": "custom",
        "content": content,
        "metadata": metadata,
    })
}

fn title(outcome: &Outcome, facts: &Facts<'_>) -> String {
    if let Some(title) = drill_title(outcome) {
        return shorten(&title, TITLE_MAX);
    }
    let source = facts.source.map_or("unknown cluster".to_owned(), code);
    let route = match (&facts.target, facts.download) {
        (Some(target), _) => format!("{source} \u{2192} {}", code(target)),
        (None, true) => format!("{source} (download)"),
        (None, false) => source,
    };
    let atlas_code = facts.atlas.and_then(|a| given(&a.error_code));
    let title = match outcome.outcome {
        OutcomeKind::Submitted => {
            let count = facts.jobs.len();
            let reconciled = if facts.atlas.is_some_and(|a| a.reconciled) {
                ", found by reconciliation"
            } else {
                ""
            };
            format!(
                "Restore submitted: {route} ({count} {}{reconciled})",
                plural(count, "job", "jobs")
            )
        }
        OutcomeKind::DryRun => format!("Dry run OK: {route} (nothing submitted)"),
        OutcomeKind::Rejected => {
            let count = outcome.errors.len();
            format!(
                "Restore rejected: {route} ({count} {})",
                plural(count, "problem", "problems")
            )
        }
        OutcomeKind::Failed => match atlas_code {
            Some(atlas_code) => format!("Restore failed: Atlas refused {route} ({atlas_code})"),
            None => format!("Restore failed: Atlas refused {route}"),
        },
        OutcomeKind::Unknown => {
            format!("Restore status UNKNOWN: {route} - check Atlas before retrying")
        }
        OutcomeKind::Duplicate => format!("Duplicate request: {route} (already handled)"),
        OutcomeKind::Queued => format!("Restore queued: {route}"),
        OutcomeKind::Finished => {
            format!("Restore FINISHED: {route} in {}", duration(outcome))
        }
        OutcomeKind::Broken => format!("Restore BROKEN: {route} after {}", duration(outcome)),
        OutcomeKind::Stalled => format!(
            "Restore STALLED: {route} not ended after {}",
            duration(outcome)
        ),
    };
    shorten(&title, TITLE_MAX)
}

/// A drill's end (CONTRACT section 7): "Drill orders-monthly PASSED: RTO 42 min (target 120
/// min), RPO 6 h 10 min", each target shown when given.
fn drill_title(outcome: &Outcome) -> Option<String> {
    let drill = outcome.drill.as_ref()?;
    let verdict = drill.verdict.as_deref()?;
    let figure = |name: &str, seconds: Option<u64>, target: Option<u32>| {
        let value = seconds.map_or_else(|| "not measured".to_owned(), human_duration);
        match target {
            Some(minutes) => format!("{name} {value} (target {minutes} min)"),
            None => format!("{name} {value}"),
        }
    };
    let mut parts = Vec::new();
    if drill.rto_seconds.is_some() || outcome.outcome.is_final() {
        parts.push(figure("RTO", drill.rto_seconds, drill.rto_target_minutes));
    }
    parts.push(figure("RPO", drill.rpo_seconds, drill.rpo_target_minutes));
    let missed = match drill.missed.as_slice() {
        [] => String::new(),
        missed => format!(" ({})", missed.join(", ").to_uppercase()),
    };
    Some(format!(
        "Drill {} {verdict}{missed}: {}",
        one_line(&drill.name),
        parts.join(", ")
    ))
}

fn summary(outcome: &Outcome, facts: &Facts<'_>) -> String {
    let mut summary = facts.headline(outcome);
    match outcome.outcome {
        OutcomeKind::Submitted if !facts.jobs.is_empty() => {
            let ids: Vec<&str> = facts.jobs.iter().map(|j| j.id.as_str()).collect();
            summary.push_str(&format!(": {}", ids.join(", ")));
        }
        OutcomeKind::Rejected if !outcome.errors.is_empty() => {
            let codes: Vec<String> = outcome.errors.iter().map(|p| p.code.to_string()).collect();
            summary.push_str(&format!(": {}", codes.join(", ")));
        }
        OutcomeKind::Failed | OutcomeKind::Unknown => {
            if let Some(answer) = facts.atlas.and_then(atlas_answer_plain) {
                summary.push_str(&format!(": {answer}"));
            }
        }
        kind if kind.is_final() => {
            let statuses: Vec<String> = facts
                .jobs
                .iter()
                .map(|j| format!("{} {}", j.id, j.status_name.as_deref().unwrap_or("?")))
                .collect();
            summary.push_str(&format!(
                " after {}: {}",
                duration(outcome),
                statuses.join(", ")
            ));
        }
        _ => {}
    }
    shorten(&one_line(&summary), VALUE_MAX)
}

/// `additionalContext`: the outcome's fields, every value a string as Chatbot requires.
fn additional_context(outcome: &Outcome, facts: &Facts<'_>) -> Map<String, Value> {
    let mut context = Map::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            context.insert(name.to_owned(), Value::String(shorten(&value, VALUE_MAX)));
        }
    };
    let owned = |value: Option<&str>| value.map(str::to_owned);
    put("requestId", owned(outcome.request_id.as_deref()));
    put("trigger", Some(trigger_name(outcome).to_owned()));
    put("groupId", owned(facts.group));
    put("clusterName", owned(facts.source));
    put("backupType", owned(outcome.backup_type.as_deref()));
    put("targetCluster", facts.target.clone());
    put("targetGroupId", facts.target_group.clone());
    put("restorePoint", facts.restore_point.clone());
    let ids: Vec<&str> = facts.jobs.iter().map(|j| j.id.as_str()).collect();
    put("jobIds", Some(ids.join(",")));
    put("batchIds", Some(facts.batches.join(",")));
    if let Some(atlas) = facts.atlas {
        put("atlasHttpStatus", atlas.http_status.map(|s| s.to_string()));
        put("atlasErrorCode", atlas.error_code.clone());
        if atlas.reconciled {
            put("reconciled", Some("true".to_owned()));
        }
    }
    let codes: Vec<String> = outcome.errors.iter().map(|p| p.code.to_string()).collect();
    put("errorCodes", Some(codes.join(",")));
    put("requestedBy", owned(outcome.requested_by.as_deref()));
    put("approvedBy", owned(outcome.approved_by.as_deref()));
    put("startedAt", Some(timestamp(outcome.started_at)));
    put("finishedAt", Some(timestamp(outcome.finished_at)));
    put(
        "durationSeconds",
        outcome.duration_seconds.map(|s| s.to_string()),
    );
    if let Some(drill) = &outcome.drill {
        put("drill", Some(drill.name.clone()));
        put("drillVerdict", drill.verdict.clone());
    }
    put("reportUrl", outcome.report_url.clone());
    context
}

/// The description, with as many list items (jobs, problems) as fit under Chatbot's limit: the
/// lines that say who and why are never the ones cut.
fn description(outcome: &Outcome, facts: &Facts<'_>) -> String {
    let mut description = String::new();
    for list_max in [LIST_MAX, 10, 5, 2, 0] {
        description = description_listing(outcome, facts, list_max);
        if description.chars().count() <= DESCRIPTION_MAX {
            return description;
        }
    }
    shorten(&description, DESCRIPTION_MAX)
}

fn description_listing(outcome: &Outcome, facts: &Facts<'_>, list_max: usize) -> String {
    let mut lines = vec![opening(outcome, facts)];
    lines.extend(where_lines(outcome, facts));
    lines.extend(atlas_lines(outcome, facts, list_max));
    lines.extend(problem_lines(outcome, list_max));
    // The exact body of a dry run: what would be sent.
    if let (OutcomeKind::DryRun, Some(body)) = (outcome.outcome, &outcome.restore) {
        let body = shorten(&body.to_string().replace('`', "'"), 1_500);
        lines.push(format!("*Would send:* ```{body}```"));
    }
    lines.extend(who_and_why_lines(outcome));
    if let Some(url) = &outcome.report_url {
        lines.push(format!("*Drill report:* {}", text(url)));
    }
    lines.join("\n")
}

/// Where from, where to.
fn where_lines(outcome: &Outcome, facts: &Facts<'_>) -> Vec<String> {
    let mut source = match facts.source {
        Some(name) => format!("*Source:* {}", code(name)),
        None => "*Source:* not known (the command did not name a cluster)".to_owned(),
    };
    if let Some(group) = facts.group {
        source.push_str(&format!(" in project {}", code(group)));
    }
    if let Some(kind) = given(&outcome.backup_type) {
        source.push_str(&format!(" ({} backup)", text(kind)));
    }
    let mut lines = vec![source];
    match (&facts.target, facts.download) {
        (Some(target), _) => {
            let mut line = format!("*Target:* {}", code(target));
            if let Some(group) = &facts.target_group {
                line.push_str(&format!(" in project {}", code(group)));
            }
            lines.push(line);
        }
        (None, true) => lines.push("*Target:* none, a download".to_owned()),
        (None, false) => {}
    }
    if let Some(method) = &facts.method {
        lines.push(format!("*Method:* {}", code(method)));
    }
    if let Some(point) = &facts.restore_point {
        lines.push(format!("*Restore point:* {}", text(point)));
    }
    lines
}

/// What Atlas did: the jobs, their batches, and its answer to a refused or unclear request.
fn atlas_lines(outcome: &Outcome, facts: &Facts<'_>, list_max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    if !facts.jobs.is_empty() {
        lines.push(format!("*{}:*", plural(facts.jobs.len(), "Job", "Jobs")));
        lines.extend(bullets(facts.jobs, list_max, job_line));
    }
    if !facts.batches.is_empty() {
        let batches: Vec<String> = facts.batches.iter().map(|b| code(b)).collect();
        lines.push(format!(
            "*{}:* {} (a sharded cluster: one job per shard and config server)",
            plural(facts.batches.len(), "Batch", "Batches"),
            batches.join(", ")
        ));
    }
    if matches!(outcome.outcome, OutcomeKind::Failed | OutcomeKind::Unknown) {
        if let Some(answer) = facts.atlas.and_then(atlas_answer_markdown) {
            lines.push(format!("*Atlas answered:* {answer}"));
        }
    }
    lines
}

/// What was wrong with the command.
fn problem_lines(outcome: &Outcome, list_max: usize) -> Vec<String> {
    if outcome.errors.is_empty() {
        return Vec::new();
    }
    let mut lines = vec!["*Problems:*".to_owned()];
    lines.extend(bullets(&outcome.errors, list_max, |problem| {
        let field = if problem.field.is_empty() {
            "(the whole command)".to_owned()
        } else {
            code(&problem.field)
        };
        format!(
            "\u{2022} {field} {}: {}",
            code(&problem.code.to_string()),
            text(&problem.message)
        )
    }));
    lines
}

/// Who asked, who approved, why, and the request itself.
fn who_and_why_lines(outcome: &Outcome) -> Vec<String> {
    let mut lines = Vec::new();
    let mut people = Vec::new();
    if let Some(who) = given(&outcome.requested_by) {
        people.push(format!("*Requested by:* {}", code(who)));
    }
    if let Some(who) = given(&outcome.approved_by) {
        people.push(format!("*Approved by:* {}", code(who)));
    }
    if !people.is_empty() {
        lines.push(people.join("  "));
    }
    if let Some(reason) = given(&outcome.reason) {
        lines.push(format!("*Reason:* {}", text(reason)));
    }
    let mut request = match given(&outcome.request_id) {
        Some(id) => format!("*Request:* {} from {}", code(id), trigger_name(outcome)),
        None => format!("*Request:* from {}", trigger_name(outcome)),
    };
    request.push_str(&format!(
        ", started {}, finished {}",
        timestamp(outcome.started_at),
        timestamp(outcome.finished_at)
    ));
    lines.push(request);
    lines
}

/// The first `list_max` items as bullet lines, then `• and N more` for the rest.
fn bullets<T>(items: &[T], list_max: usize, line: impl Fn(&T) -> String) -> Vec<String> {
    let mut lines: Vec<String> = items.iter().take(list_max).map(line).collect();
    if items.len() > list_max {
        lines.push(format!("\u{2022} and {} more", items.len() - list_max));
    }
    lines
}

/// The first line: what happened, in a sentence.
fn opening(outcome: &Outcome, facts: &Facts<'_>) -> String {
    match outcome.outcome {
        OutcomeKind::Submitted => {
            let count = facts.jobs.len();
            let mut line = format!(
                "Atlas accepted the restore: {count} {} created.",
                plural(count, "job", "jobs")
            );
            if facts.atlas.is_some_and(|a| a.reconciled) {
                line.push_str(&format!(
                    " Atlas's answer was unclear; {} found by reconciliation and adopted.",
                    plural(count, "the job was", "the jobs were")
                ));
            }
            line
        }
        OutcomeKind::DryRun => {
            "Dry run: the command is valid. Nothing was sent to Atlas.".to_owned()
        }
        OutcomeKind::Rejected => {
            let count = outcome.errors.len();
            format!(
                "The command was rejected ({count} {}). Atlas was not asked to restore.",
                plural(count, "problem", "problems")
            )
        }
        OutcomeKind::Failed => "Atlas refused the restore. No restore job was created.".to_owned(),
        OutcomeKind::Unknown => "The request may have reached Atlas, but no usable answer came \
             back and reconciliation found no job. A person must check before anything is sent \
             again."
            .to_owned(),
        OutcomeKind::Duplicate => {
            "This request was already handled; nothing was sent again.".to_owned()
        }
        OutcomeKind::Queued => "The command was accepted and queued for submission.".to_owned(),
        OutcomeKind::Finished => format!(
            "The restore finished: every job ended well, {} after it was submitted (the measured recovery time).",
            duration(outcome)
        ),
        OutcomeKind::Broken => {
            let broken = facts.jobs.iter().filter(|j| job_ended_badly(j)).count();
            format!(
                "The restore ended badly: {broken} of {} {} did not end well, {} after it was submitted.",
                facts.jobs.len(),
                plural(facts.jobs.len(), "job", "jobs"),
                duration(outcome)
            )
        }
        OutcomeKind::Stalled => format!(
            "The restore has not ended {} after it was submitted (FOLLOW_MAX_HOURS); the runner stopped following it.",
            duration(outcome)
        ),
    }
}

/// A job's last status names a bad end (CONTRACT section 6), for counting them in a message.
fn job_ended_badly(job: &JobSummary) -> bool {
    const BAD: [&str; 9] = [
        "BROKEN",
        "KILLED",
        "FAILED",
        "CANCELLED",
        "EXPIRED",
        "INTERRUPTED",
        "MAX_DOWNLOADS_EXCEEDED",
        "FAILED_DELIVERY",
        "ERROR",
    ];
    [
        job.status_name.as_deref(),
        job.delivery_status_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|status| BAD.contains(&status))
}

/// `durationSeconds` for a person: `42 min 30 s`, `2 h 05 min`.
fn duration(outcome: &Outcome) -> String {
    let Some(seconds) = outcome.duration_seconds else {
        return "an unknown time".to_owned();
    };
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds} s"),
        (0, _) => format!("{minutes} min {seconds:02} s"),
        _ => format!("{hours} h {minutes:02} min"),
    }
}

fn job_line(job: &JobSummary) -> String {
    let mut line = format!("\u{2022} {}", code(&job.id));
    if let Some(status) = given(&job.status_name) {
        line.push_str(&format!(" {}", text(status)));
    }
    if let Some(delivery) = given(&job.delivery_status_name) {
        line.push_str(&format!(" (delivery {})", text(delivery)));
    }
    if let Some(target) = given(&job.target_cluster_name) {
        line.push_str(&format!(" \u{2192} {}", code(target)));
    }
    if let Some(batch) = given(&job.batch_id) {
        line.push_str(&format!(", batch {}", code(batch)));
    }
    line
}

/// `HTTP 400, INVALID_GROUP_ID: detail (reason)`, plain.
fn atlas_answer_plain(atlas: &AtlasSummary) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(status) = atlas.http_status {
        parts.push(format!("HTTP {status}"));
    }
    if let Some(code) = given(&atlas.error_code) {
        parts.push(code.to_owned());
    }
    let mut answer = parts.join(" ");
    if let Some(detail) = given(&atlas.detail) {
        answer = if answer.is_empty() {
            detail.to_owned()
        } else {
            format!("{answer}: {detail}")
        };
    }
    if let Some(reason) = given(&atlas.reason) {
        answer = if answer.is_empty() {
            reason.to_owned()
        } else {
            format!("{answer} ({reason})")
        };
    }
    (!answer.is_empty()).then_some(answer)
}

fn atlas_answer_markdown(atlas: &AtlasSummary) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(status) = atlas.http_status {
        parts.push(format!("HTTP {status}"));
    }
    if let Some(error_code) = given(&atlas.error_code) {
        parts.push(code(error_code));
    }
    if let Some(detail) = given(&atlas.detail) {
        parts.push(format!("\u{201C}{}\u{201D}", text(detail)));
    }
    if let Some(reason) = given(&atlas.reason) {
        parts.push(format!("({})", text(reason)));
    }
    if parts.is_empty() {
        return Some("no usable answer (timeout, reset or unreadable)".to_owned());
    }
    Some(parts.join(" "))
}

// ---------------------------------------------------------------------------------------------
// Next steps: what a person does about the outcome, one function per outcome kind

/// At most [`STEPS_MAX`] steps, each at most [`VALUE_MAX`] characters.
fn next_steps(outcome: &Outcome, facts: &Facts<'_>) -> Vec<String> {
    let names = StepNames::of(outcome, facts);
    let steps = match outcome.outcome {
        OutcomeKind::Submitted => submitted_steps(&names),
        OutcomeKind::DryRun => dry_run_steps(&names),
        OutcomeKind::Rejected => rejected_steps(&names),
        OutcomeKind::Failed => failed_steps(&names),
        OutcomeKind::Unknown => unknown_steps(&names),
        OutcomeKind::Finished => finished_steps(&names),
        OutcomeKind::Broken => broken_steps(&names),
        OutcomeKind::Stalled => stalled_steps(&names),
        OutcomeKind::Duplicate | OutcomeKind::Queued => Vec::new(),
    };
    steps
        .into_iter()
        .take(STEPS_MAX)
        .map(|step| shorten(&step, VALUE_MAX))
        .collect()
}

/// What the steps name, as inline code where it comes from the outcome.
struct StepNames<'a> {
    outcome: &'a Outcome,
    facts: &'a Facts<'a>,
    /// The idempotency key, if the command had one.
    key: Option<String>,
    /// The source cluster, else `the source cluster`.
    source: String,
    /// ` (project <groupId>)`, or nothing.
    project: String,
}

impl<'a> StepNames<'a> {
    fn of(outcome: &'a Outcome, facts: &'a Facts<'a>) -> StepNames<'a> {
        StepNames {
            outcome,
            facts,
            key: given(&outcome.request_id).map(code),
            source: facts.source.map_or("the source cluster".to_owned(), code),
            project: facts
                .group
                .map(|g| format!(" (project {})", code(g)))
                .unwrap_or_default(),
        }
    }

    /// The target cluster, else the source.
    fn target(&self) -> String {
        self.facts
            .target
            .as_deref()
            .map_or(self.source.clone(), code)
    }

    /// The ids of the first [`LIST_MAX`] jobs that `keep` keeps.
    fn job_ids(&self, keep: impl Fn(&JobSummary) -> bool) -> Vec<String> {
        self.facts
            .jobs
            .iter()
            .filter(|job| keep(job))
            .take(LIST_MAX)
            .map(|job| code(&job.id))
            .collect()
    }

    /// `say(key)` when the command had a key, else nothing.
    fn about_key(&self, say: impl Fn(&str) -> String) -> String {
        self.key.as_deref().map(say).unwrap_or_default()
    }
}

fn submitted_steps(names: &StepNames<'_>) -> Vec<String> {
    let target = names.target();
    let ids = names.job_ids(|_| true);
    let step = if ids.is_empty() {
        format!("Follow the restore of {target} in the Atlas UI until it ends.")
    } else {
        format!(
            "Follow {} {} in the Atlas UI (Backup, Restores) or API until {} ends; {target} is overwritten.",
            plural(ids.len(), "job", "jobs"),
            ids.join(", "),
            plural(ids.len(), "it", "every job")
        )
    };
    vec![step]
}

fn dry_run_steps(names: &StepNames<'_>) -> Vec<String> {
    let key = names.about_key(|k| format!(" (the key {k} was released)"));
    vec![format!(
        "To restore for real, send the same command without dryRun{key}."
    )]
}

/// How to fix the command first, then what to do about the problems that need more than a fix.
fn rejected_steps(names: &StepNames<'_>) -> Vec<String> {
    let problems = &names.outcome.errors;
    let mut steps = unique(
        problems
            .iter()
            .filter_map(|problem| problem_step(problem.code, &names.source)),
    );
    let mut fields = unique(
        problems
            .iter()
            .filter(|problem| !problem.field.is_empty())
            .map(|problem| code(&problem.field)),
    );
    fields.truncate(LIST_MAX);
    let released = names.about_key(|k| format!("; the key {k} was released and can be used again"));
    let fix = if fields.is_empty() {
        format!("Fix the command as the problems above say, then send it again{released}.")
    } else {
        format!(
            "Fix the listed {}: {}, then send the command again{released}.",
            plural(fields.len(), "field", "fields"),
            fields.join(", ")
        )
    };
    steps.insert(0, fix);
    steps
}

/// What to do about a problem that fixing a field does not solve.
fn problem_step(error: ErrorCode, source: &str) -> Option<String> {
    let step = match error {
        ErrorCode::KeyReused => {
            "Use a new idempotencyKey: this one already belongs to a different command."
        }
        ErrorCode::SelfApproval => "Have the command approved by someone other than its requester.",
        ErrorCode::ApproverNotAllowed => {
            "Have the command approved by someone listed in APPROVERS."
        }
        ErrorCode::ProtectedTarget => {
            "A protected cluster can only be overwritten by an approved webhook request: send it that way, or choose another target."
        }
        ErrorCode::UnresolvedTarget => {
            "Check that the target cluster id exists and the runner's Atlas key can read the target project, or give the target by name."
        }
        ErrorCode::SnapshotNotFound => {
            return Some(format!(
                "Wait for a completed snapshot of {source}, or give a snapshotId."
            ));
        }
        _ => return None,
    };
    Some(step.to_owned())
}

fn failed_steps(names: &StepNames<'_>) -> Vec<String> {
    let atlas = names.facts.atlas;
    let mut steps = vec![act_on_answer(atlas)];
    steps.extend(refusal_step(atlas.and_then(|a| a.http_status), names));
    let released = names.about_key(|k| format!(" and the key {k} was released"));
    steps.push(format!(
        "No job was created{released}: send the corrected command again."
    ));
    steps
}

/// The first step after a refusal: Atlas's own words.
fn act_on_answer(atlas: Option<&AtlasSummary>) -> String {
    let error_code = atlas.and_then(|a| given(&a.error_code));
    let detail = atlas.and_then(|a| given(&a.detail)).map(text);
    match (error_code, detail) {
        (Some(c), Some(d)) => format!("Act on Atlas's answer {}: {d}", code(c)),
        (Some(c), None) => format!("Act on Atlas's answer {}.", code(c)),
        (None, Some(d)) => format!("Act on Atlas's answer: {d}"),
        (None, None) => "Read Atlas's answer in the outcome and the runner's log.".to_owned(),
    }
}

/// What the HTTP status of a refusal points at, where it points at something.
fn refusal_step(http_status: Option<u16>, names: &StepNames<'_>) -> Option<String> {
    let step = match http_status {
        Some(401 | 403) => {
            "Check the Atlas API key in Secrets Manager: its project roles and its IP access list."
        }
        Some(404) => {
            return Some(format!(
                "Check that {}{}, the snapshot and the target exist and the API key can see them.",
                names.source, names.project
            ));
        }
        Some(409) => {
            "Another restore or operation may be running on the cluster: wait for it to end."
        }
        Some(429) => "Atlas rate-limited the request: send it again in a few minutes.",
        _ => return None,
    };
    Some(step.to_owned())
}

fn unknown_steps(names: &StepNames<'_>) -> Vec<String> {
    let held = names
        .about_key(|k| format!(" (the key {k} stays held, so the same command gets DUPLICATE)"));
    vec![
        format!(
            "Check the Atlas UI/API for restore jobs on {}{} created since {} before retrying; do not resend blindly.",
            names.source,
            names.project,
            timestamp(names.outcome.started_at)
        ),
        format!(
            "If a job exists, follow it{held}; if none does, send the command again with a new idempotencyKey."
        ),
    ]
}

fn finished_steps(names: &StepNames<'_>) -> Vec<String> {
    vec![
        format!(
            "Check the restored data on {} before it is used.",
            names.target()
        ),
        format!(
            "Record the measured recovery time: {} (durationSeconds {}).",
            duration(names.outcome),
            names.outcome.duration_seconds.unwrap_or(0)
        ),
    ]
}

fn broken_steps(names: &StepNames<'_>) -> Vec<String> {
    vec![
        format!(
            "Read why {} ended badly in the Atlas UI (Backup, Restores) or API.",
            names.job_ids(job_ended_badly).join(", ")
        ),
        format!(
            "Do not use {}: it may hold part of the restore. To try again, send the command with a new idempotencyKey.",
            names.target()
        ),
    ]
}

fn stalled_steps(names: &StepNames<'_>) -> Vec<String> {
    let ids = names.job_ids(|_| true);
    vec![
        format!(
            "Check {} in the Atlas UI (Backup, Restores): the runner no longer follows {}.",
            ids.join(", "),
            plural(ids.len(), "it", "them")
        ),
        "If a job is stuck, open a case with MongoDB support before restoring again.".to_owned(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Text helpers for the chat form

fn plural<'s>(count: usize, one: &'s str, many: &'s str) -> &'s str {
    if count == 1 { one } else { many }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whitespace runs (line breaks included) as one space, control characters dropped.
fn one_line(value: &str) -> String {
    value
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value from the outcome as inline text: one line, bounded, and unable to form chat markup
/// such as Slack's `<!channel>` or a link.
fn text(value: &str) -> String {
    let line = one_line(value)
        .replace('<', "\u{2039}")
        .replace('>', "\u{203A}");
    shorten(&line, VALUE_MAX)
}

/// A value from the outcome as inline code.
fn code(value: &str) -> String {
    format!("`{}`", text(value).replace('`', "'"))
}

/// At most `max` characters, cut on a character boundary and marked with an ellipsis.
fn shorten(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        return value.to_owned();
    }
    let kept: String = value.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}\u{2026}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::NotifyFormat;
    use crate::notify::fixtures::{at, failed, rejected, submitted, unknown, with};
    use crate::notify::render;
    use crate::outcome::Problem;

    fn chat(outcome: &Outcome) -> Value {
        serde_json::from_str(&render(outcome, NotifyFormat::Chatbot, false).message).unwrap()
    }

    fn drill_end(kind: OutcomeKind, verdict: &str, missed: &[&str]) -> Outcome {
        with(kind, |o| {
            o.duration_seconds = Some(42 * 60 + 7);
            o.report_url =
                Some("https://x.example/drills/orders-monthly/report?expires=1&sig=v0%3Dab".into());
            o.drill = Some(crate::outcome::DrillFigures {
                name: "orders-monthly".into(),
                rto_target_minutes: Some(120),
                rpo_target_minutes: None,
                restore_point_time: Some(at(0)),
                rpo_seconds: Some(6 * 3600 + 10 * 60),
                rto_seconds: Some(42 * 60 + 7),
                verdict: Some(verdict.into()),
                missed: missed.iter().map(|m| (*m).to_owned()).collect(),
            });
        })
    }

    #[test]
    fn a_drill_s_end_is_titled_with_its_verdict_and_figures() {
        let m = chat(&drill_end(OutcomeKind::Finished, "PASSED", &[]));
        assert_eq!(
            m["content"]["title"],
            "Drill orders-monthly PASSED: RTO 42 min (target 120 min), RPO 6 h 10 min"
        );
        assert_eq!(m["metadata"]["additionalContext"]["drillVerdict"], "PASSED");
        assert!(
            m["content"]["description"]
                .as_str()
                .unwrap()
                .contains("*Drill report:* https://x.example/drills/orders-monthly/report?")
        );
        let m = chat(&drill_end(OutcomeKind::Finished, "MISSED_TARGET", &["rto"]));
        assert!(
            m["content"]["title"]
                .as_str()
                .unwrap()
                .starts_with("Drill orders-monthly MISSED_TARGET (RTO): RTO 42 min")
        );
        let mut failed = drill_end(OutcomeKind::Failed, "FAILED", &[]);
        failed.duration_seconds = None;
        if let Some(d) = failed.drill.as_mut() {
            d.rto_seconds = None;
        }
        assert_eq!(
            chat(&failed)["content"]["title"],
            "Drill orders-monthly FAILED: RPO 6 h 10 min"
        );
        // A drill still running reads as any submitted restore.
        let mut running = drill_end(OutcomeKind::Submitted, "PASSED", &[]);
        if let Some(d) = running.drill.as_mut() {
            d.verdict = None;
        }
        assert!(
            chat(&running)["content"]["title"]
                .as_str()
                .unwrap()
                .starts_with("Restore submitted")
        );
    }

    fn no_nulls(value: &Value) -> bool {
        match value {
            Value::Null => false,
            Value::Array(items) => items.iter().all(no_nulls),
            Value::Object(map) => map.values().all(no_nulls),
            _ => true,
        }
    }

    #[test]
    fn every_chat_message_has_chatbots_shape_and_no_nulls() {
        let kinds = [
            submitted(),
            with(OutcomeKind::DryRun, |o| o.atlas = None),
            rejected(),
            failed(),
            unknown(),
        ];
        for outcome in &kinds {
            let m = chat(outcome);
            assert_eq!(m["version"], "1.0");
            assert_eq!(m["source"], "custom");
            assert_eq!(m["content"]["textType"], "client-markdown");
            assert!(m["content"]["title"].as_str().unwrap().len() <= TITLE_MAX * 4);
            assert!(!m["content"]["description"].as_str().unwrap().is_empty());
            assert_eq!(m["metadata"]["threadId"], "approval-7f3a");
            assert_eq!(m["metadata"]["eventType"], outcome.outcome.as_str());
            assert!(!m["metadata"]["summary"].as_str().unwrap().is_empty());
            let context = m["metadata"]["additionalContext"].as_object().unwrap();
            assert!(context.values().all(Value::is_string), "{context:?}");
            assert!(no_nulls(&m), "{m:#}");
        }
    }

    #[test]
    fn a_submitted_chat_message_names_clusters_jobs_people_and_reason() {
        let m = chat(&submitted());
        let title = m["content"]["title"].as_str().unwrap();
        assert_eq!(
            title,
            "Restore submitted: `orders` \u{2192} `orders-drill` (1 job)"
        );
        let description = m["content"]["description"].as_str().unwrap();
        for needle in [
            "`orders` in project `5e2211c17a3e5a48f5497de3` (legacy backup)",
            "*Target:* `orders-drill` in project `5e2211c17a3e5a48f5497de3`",
            "`6a1b2c3d4e5f6a7b8c9d0e1f` IN_PROGRESS",
            "*Restore point:* snapshot 5f1c6b1e2a9b4f3d8c7e6a5b",
            "*Requested by:* `U024BE7LH`",
            "*Approved by:* `U0G9QF9C6`",
            "*Reason:* INC-4211 drop of orders.items",
            "*Request:* `approval-7f3a` from webhook",
        ] {
            assert!(
                description.contains(needle),
                "{needle:?} not in {description}"
            );
        }
        let context = &m["metadata"]["additionalContext"];
        assert_eq!(context["jobIds"], "6a1b2c3d4e5f6a7b8c9d0e1f");
        assert_eq!(context["targetCluster"], "orders-drill");
        assert!(context.get("batchIds").is_none());
        assert!(context.get("errorCodes").is_none());
        let steps = m["content"]["nextSteps"].as_array().unwrap();
        assert!(
            steps[0]
                .as_str()
                .unwrap()
                .contains("`6a1b2c3d4e5f6a7b8c9d0e1f`")
        );
    }

    #[test]
    fn a_sharded_batch_lists_every_job_and_the_batch() {
        let outcome = with(OutcomeKind::Submitted, |o| {
            o.atlas = Some(AtlasSummary {
                http_status: Some(200),
                jobs: ["shard0", "shard1", "config"]
                    .iter()
                    .map(|id| JobSummary {
                        id: (*id).into(),
                        batch_id: Some("batch-9".into()),
                        status_name: Some("QUEUED".into()),
                        target_cluster_name: Some("orders-drill".into()),
                        delivery_status_name: None,
                    })
                    .collect(),
                ..AtlasSummary::default()
            });
        });
        let m = chat(&outcome);
        assert!(
            m["content"]["title"]
                .as_str()
                .unwrap()
                .ends_with("(3 jobs)")
        );
        let description = m["content"]["description"].as_str().unwrap();
        for id in ["`shard0`", "`shard1`", "`config`"] {
            assert!(description.contains(id));
        }
        assert!(description.contains("*Batch:* `batch-9` (a sharded cluster"));
        assert_eq!(m["metadata"]["additionalContext"]["batchIds"], "batch-9");
        assert_eq!(
            m["metadata"]["additionalContext"]["jobIds"],
            "shard0,shard1,config"
        );
    }

    #[test]
    fn a_target_given_by_id_is_shown_by_id() {
        let outcome = with(OutcomeKind::DryRun, |o| {
            o.atlas = None;
            o.restore = Some(json!({
                "pointInTimeUTCMillis": 1_764_349_575_000_i64,
                "delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": "aa", "targetClusterId": "0123456789abcdef01234567"}
            }));
        });
        let m = chat(&outcome);
        assert_eq!(
            m["content"]["title"],
            "Dry run OK: `orders` \u{2192} `id 0123456789abcdef01234567` (nothing submitted)"
        );
        let description = m["content"]["description"].as_str().unwrap();
        assert!(
            description.contains("point in time 2025-11-28T17:06:15.000Z"),
            "{description}"
        );
        assert!(description.contains("*Would send:* ```{"));
        assert!(
            m["content"]["nextSteps"][0]
                .as_str()
                .unwrap()
                .contains("without dryRun")
        );
    }

    #[test]
    fn a_rejected_chat_message_lists_the_problems_and_how_to_fix_them() {
        let m = chat(&rejected());
        assert_eq!(
            m["content"]["title"],
            "Restore rejected: `orders` \u{2192} `orders-drill` (2 problems)"
        );
        let description = m["content"]["description"].as_str().unwrap();
        assert!(description.contains("`/restore/snapshotID` `UNKNOWN_FIELD`: unknown field"));
        assert!(description.contains("`/approvedBy` `SELF_APPROVAL`"));
        let steps: Vec<&str> = m["content"]["nextSteps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(
            steps[0].starts_with("Fix the listed fields: `/restore/snapshotID`, `/approvedBy`")
        );
        assert!(
            steps
                .iter()
                .any(|s| s.contains("someone other than its requester"))
        );
        assert_eq!(
            m["metadata"]["additionalContext"]["errorCodes"],
            "UNKNOWN_FIELD,SELF_APPROVAL"
        );
    }

    #[test]
    fn a_failed_chat_message_carries_atlas_words_and_what_to_do() {
        let m = chat(&failed());
        assert_eq!(
            m["content"]["title"],
            "Restore failed: Atlas refused `orders` \u{2192} `orders-drill` (INVALID_SNAPSHOT_ID)"
        );
        let description = m["content"]["description"].as_str().unwrap();
        assert!(description.contains(
            "*Atlas answered:* HTTP 400 `INVALID_SNAPSHOT_ID` \u{201C}Snapshot 5f1c6b1e2a9b4f3d8c7e6a5b not found.\u{201D} (Bad Request)"
        ));
        let steps = m["content"]["nextSteps"].as_array().unwrap();
        assert!(
            steps[0]
                .as_str()
                .unwrap()
                .contains("`INVALID_SNAPSHOT_ID`: Snapshot")
        );
        assert_eq!(m["metadata"]["additionalContext"]["atlasHttpStatus"], "400");
        assert_eq!(
            m["metadata"]["additionalContext"]["atlasErrorCode"],
            "INVALID_SNAPSHOT_ID"
        );
    }

    #[test]
    fn an_unknown_chat_message_says_to_check_atlas_before_retrying() {
        let m = chat(&unknown());
        let steps = m["content"]["nextSteps"].as_array().unwrap();
        let first = steps[0].as_str().unwrap();
        assert!(first.contains("restore jobs on `orders`"), "{first}");
        assert!(first.contains("since 2026-11-28T17:06:15.000Z"), "{first}");
        assert!(first.contains("do not resend blindly"));
        assert!(m["content"]["title"].as_str().unwrap().contains("UNKNOWN"));
    }

    #[test]
    fn failed_unknown_and_rejected_always_have_next_steps() {
        for mut outcome in [rejected(), failed(), unknown()] {
            outcome.atlas = None;
            outcome.request_id = None;
            let steps = chat(&outcome)["content"]["nextSteps"]
                .as_array()
                .unwrap()
                .len();
            assert!(steps > 0, "{:?}", outcome.outcome);
        }
    }

    #[test]
    fn optional_fields_are_left_out_of_the_chat_message() {
        let outcome = with(OutcomeKind::Rejected, |o| {
            o.request_id = None;
            o.group_id = None;
            o.cluster_name = None;
            o.backup_type = None;
            o.restore = None;
            o.atlas = None;
            o.requested_by = None;
            o.approved_by = None;
            o.reason = None;
            o.errors = vec![Problem::new("", ErrorCode::UnknownEvent, "no known shape")];
        });
        let m = chat(&outcome);
        assert!(m["metadata"].get("threadId").is_none());
        let context = m["metadata"]["additionalContext"].as_object().unwrap();
        let keys: Vec<&str> = context.keys().map(String::as_str).collect();
        assert_eq!(keys, ["errorCodes", "finishedAt", "startedAt", "trigger"]);
        let description = m["content"]["description"].as_str().unwrap();
        assert!(!description.contains("Requested by"));
        assert!(description.contains("(the whole command) `UNKNOWN_EVENT`"));
        assert!(no_nulls(&m));
    }

    #[test]
    fn user_text_cannot_form_chat_markup_or_break_lines() {
        let outcome = with(OutcomeKind::Submitted, |o| {
            o.reason = Some("ping <!channel>\n*Approved by:* `me`".into());
        });
        let description = chat(&outcome)["content"]["description"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!description.contains("<!channel>"));
        assert!(
            description.contains("*Reason:* ping \u{2039}!channel\u{203A} *Approved by:* `me`")
        );
    }

    #[test]
    fn the_description_stays_under_chatbots_limit() {
        let outcome = with(OutcomeKind::Rejected, |o| {
            o.errors = (0..200)
                .map(|i| Problem::new(format!("/f{i}"), ErrorCode::InvalidType, "x".repeat(2_000)))
                .collect();
            o.reason = Some("r".repeat(5_000));
        });
        let m = chat(&outcome);
        let description = m["content"]["description"].as_str().unwrap();
        assert!(description.chars().count() <= DESCRIPTION_MAX);
        assert!(description.contains("and 190 more"), "{description}");
        assert!(description.ends_with(&format!("finished {}", timestamp(at(16)))));
        assert!(m["content"]["nextSteps"].as_array().unwrap().len() <= STEPS_MAX);
    }
}

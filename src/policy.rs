//! Approval policy and protected targets (CONTRACT section 2). Pure: the target's name, when
//! the command gives only its id, is learnt by the caller and passed in.

use crate::command::{LegacyRestoreSpec, RestoreCommand, RestoreSpec, TargetCluster};
use serde_json::Value;

use crate::outcome::{ErrorCode, Problem, Trigger};

/// A cluster that only an approved webhook may overwrite: by name in any project, or in one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedCluster {
    pub group_id: Option<String>,
    pub name: String,
}

/// What the deployment offers a request that must be followed (CONTRACT sections 6 to 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowCapacity {
    /// `WORK_QUEUE_URL` is set: follow-up checks can be queued.
    pub work_queue: bool,
    /// `DRILL_TABLE` is set: drill evidence can be kept.
    pub drill_table: bool,
}

/// The rules `drill` and `taskToken` set by trigger and deployment (CONTRACT sections 7 and 8).
/// Takes the command as given, so these problems come with any validation problems at once.
pub fn follow_requirements(
    value: &Value,
    trigger: Trigger,
    capacity: FollowCapacity,
) -> Vec<Problem> {
    let given = |name: &str| value.get(name).is_some_and(|v| !v.is_null());
    let mut problems = Vec::new();
    if given("taskToken") {
        if matches!(trigger, Trigger::Webhook | Trigger::Schedule) {
            problems.push(Problem::new(
                "/taskToken",
                ErrorCode::Conflict,
                "a taskToken is accepted only from a direct invocation or an EventBridge event (a Step Functions task): a webhook or schedule caller must not be able to end someone else's task, so nothing is sent to it",
            ));
        } else if !capacity.work_queue {
            problems.push(Problem::new(
                "/taskToken",
                ErrorCode::FollowNeedsQueue,
                "a command with a taskToken is followed to its end, which needs the work queue: set WORK_QUEUE_URL (the stack's WorkQueue)",
            ));
        }
    }
    if given("drill") {
        if !capacity.work_queue {
            problems.push(Problem::new(
                "/drill",
                ErrorCode::FollowNeedsQueue,
                "a drill is followed to its end to measure it, which needs the work queue: set WORK_QUEUE_URL (the stack's WorkQueue)",
            ));
        }
        if !capacity.drill_table {
            problems.push(Problem::new(
                "/drill",
                ErrorCode::DrillsNotConfigured,
                "drill evidence has nowhere to go: set DRILL_TABLE (the stack's DrillTable)",
            ));
        }
    }
    problems
}

/// The approval rules of the webhook path: who asked, who approved and why are required;
/// the approver must be in `APPROVERS` and must not be the requester.
/// Takes the fields as given (a command that fails validation is still checked, so every
/// problem is reported at once).
pub fn check_webhook_approval(people: &People<'_>, approvers: &[String]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (field, value, what) in [
        (
            "/requestedBy",
            &people.requested_by,
            "who asked for the restore",
        ),
        ("/approvedBy", &people.approved_by, "who approved it"),
        ("/reason", &people.reason, "why (an incident or ticket)"),
    ] {
        if value.is_none() {
            problems.push(Problem::new(
                field,
                ErrorCode::Required,
                format!("a webhook restore must say {what}"),
            ));
        }
    }
    if let Some(approver) = people.approved_by {
        if !approvers.iter().any(|allowed| allowed == approver) {
            let message = if approvers.is_empty() {
                "no approvers are configured (APPROVERS is empty), so every webhook approval is refused".to_owned()
            } else {
                format!("{approver:?} is not allowed to approve restores (not in APPROVERS)")
            };
            problems.push(Problem::new(
                "/approvedBy",
                ErrorCode::ApproverNotAllowed,
                message,
            ));
        }
        if people.requested_by == Some(approver) {
            problems.push(Problem::new(
                "/approvedBy",
                ErrorCode::SelfApproval,
                "the approver must be someone other than the requester",
            ));
        }
    }
    problems
}

/// Who asked, who approved and why, as the command gives them (strings only).
#[derive(Clone, Copy, Debug, Default)]
pub struct People<'a> {
    pub requested_by: Option<&'a str>,
    pub approved_by: Option<&'a str>,
    pub reason: Option<&'a str>,
}

impl<'a> People<'a> {
    pub fn from_value(command: &'a serde_json::Value) -> People<'a> {
        let text = |name: &str| {
            command
                .get(name)
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
        };
        People {
            requested_by: text("requestedBy"),
            approved_by: text("approvedBy"),
            reason: text("reason"),
        }
    }
}

/// How a command names the cluster it overwrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetName<'a> {
    Name(&'a str),
    Id(&'a str),
}

/// The target a destructive restore overwrites (legacy `AUTOMATED_RESTORE`; cloud `automated`
/// or `pointInTime`): `(group id, cluster)`. `None` for a download.
pub fn destructive_target(command: &RestoreCommand) -> Option<(&str, TargetName<'_>)> {
    match &command.restore {
        RestoreSpec::Legacy(LegacyRestoreSpec::Automated { target, .. }) => {
            let cluster = match &target.cluster {
                TargetCluster::Name(name) => TargetName::Name(name.as_str()),
                TargetCluster::Id(id) => TargetName::Id(id.as_str()),
            };
            Some((target.group_id.as_str(), cluster))
        }
        RestoreSpec::Legacy(LegacyRestoreSpec::Download { .. }) => None,
        RestoreSpec::Cloud(spec) => spec.target().map(|target| {
            (
                target.group_id.as_str(),
                TargetName::Name(target.cluster_name.as_str()),
            )
        }),
    }
}

/// Whether the cluster `name` in project `group_id` is listed in `PROTECTED_CLUSTERS`.
pub fn is_protected(protected: &[ProtectedCluster], group_id: &str, name: &str) -> bool {
    protected.iter().any(|p| {
        p.name == name
            && p.group_id
                .as_deref()
                .is_none_or(|g| g.eq_ignore_ascii_case(group_id))
    })
}

/// The `PROTECTED_TARGET` problem for a trigger other than an approved webhook.
pub fn protected_target_problem(group_id: &str, name: &str) -> Problem {
    Problem::new(
        "/restore/delivery",
        ErrorCode::ProtectedTarget,
        format!(
            "{group_id}/{name} is a protected cluster: an automated restore onto it is accepted only from an approved webhook"
        ),
    )
}

/// The `UNRESOLVED_TARGET` problem when a target given by id could not be named.
pub fn unresolved_target_problem(group_id: &str, cluster_id: &str, why: &str) -> Problem {
    Problem::new(
        "/restore/delivery/targetClusterId",
        ErrorCode::UnresolvedTarget,
        format!(
            "could not learn the name of cluster {cluster_id} in project {group_id} to check it against PROTECTED_CLUSTERS: {why}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: &str = "5e2211c17a3e5a48f5497de3";

    fn command(
        requested_by: Option<&'static str>,
        approved_by: Option<&'static str>,
        reason: Option<&'static str>,
    ) -> People<'static> {
        People {
            requested_by,
            approved_by,
            reason,
        }
    }

    fn codes(problems: &[Problem]) -> Vec<(&str, ErrorCode)> {
        problems
            .iter()
            .map(|p| (p.field.as_str(), p.code))
            .collect()
    }

    #[test]
    fn an_allowed_approver_other_than_the_requester_passes() {
        let approvers = vec!["U2".to_owned()];
        assert!(
            check_webhook_approval(&command(Some("U1"), Some("U2"), Some("INC-1")), &approvers)
                .is_empty()
        );
    }

    #[test]
    fn people_and_reason_are_required_on_the_webhook() {
        let problems = check_webhook_approval(&command(None, None, None), &["U2".into()]);
        assert_eq!(
            codes(&problems),
            vec![
                ("/requestedBy", ErrorCode::Required),
                ("/approvedBy", ErrorCode::Required),
                ("/reason", ErrorCode::Required)
            ]
        );
    }

    #[test]
    fn approver_not_listed_self_approval_and_an_empty_list() {
        let problems =
            check_webhook_approval(&command(Some("U1"), Some("U3"), Some("r")), &["U2".into()]);
        assert_eq!(
            codes(&problems),
            vec![("/approvedBy", ErrorCode::ApproverNotAllowed)]
        );
        let problems =
            check_webhook_approval(&command(Some("U2"), Some("U2"), Some("r")), &["U2".into()]);
        assert_eq!(
            codes(&problems),
            vec![("/approvedBy", ErrorCode::SelfApproval)]
        );
        let problems = check_webhook_approval(&command(Some("U1"), Some("U2"), Some("r")), &[]);
        assert_eq!(
            codes(&problems),
            vec![("/approvedBy", ErrorCode::ApproverNotAllowed)]
        );
        assert!(problems[0].message.contains("APPROVERS is empty"));
    }

    #[test]
    fn protected_by_name_anywhere_or_in_one_project() {
        let protected = vec![
            ProtectedCluster {
                group_id: None,
                name: "orders".into(),
            },
            ProtectedCluster {
                group_id: Some(GROUP.into()),
                name: "billing".into(),
            },
        ];
        assert!(is_protected(&protected, GROUP, "orders"));
        assert!(is_protected(
            &protected,
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            "orders"
        ));
        assert!(is_protected(&protected, &GROUP.to_uppercase(), "billing"));
        assert!(!is_protected(
            &protected,
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            "billing"
        ));
        assert!(!is_protected(&protected, GROUP, "orders-drill"));
    }

    const FULL: FollowCapacity = FollowCapacity {
        work_queue: true,
        drill_table: true,
    };

    #[test]
    fn a_task_token_is_refused_from_a_webhook_or_a_schedule_whatever_the_deployment() {
        let value = serde_json::json!({"taskToken": "t"});
        for trigger in [Trigger::Webhook, Trigger::Schedule] {
            assert_eq!(
                codes(&follow_requirements(&value, trigger, FULL)),
                vec![("/taskToken", ErrorCode::Conflict)]
            );
        }
        for trigger in [Trigger::Direct, Trigger::Event] {
            assert!(follow_requirements(&value, trigger, FULL).is_empty());
        }
    }

    #[test]
    fn a_followed_request_needs_the_queue_and_a_drill_its_table() {
        let value = serde_json::json!({"taskToken": "t", "drill": {"name": "d"}});
        let nothing = FollowCapacity {
            work_queue: false,
            drill_table: false,
        };
        assert_eq!(
            codes(&follow_requirements(&value, Trigger::Direct, nothing)),
            vec![
                ("/taskToken", ErrorCode::FollowNeedsQueue),
                ("/drill", ErrorCode::FollowNeedsQueue),
                ("/drill", ErrorCode::DrillsNotConfigured),
            ]
        );
        let queue_only = FollowCapacity {
            work_queue: true,
            drill_table: false,
        };
        assert_eq!(
            codes(&follow_requirements(&value, Trigger::Event, queue_only)),
            vec![("/drill", ErrorCode::DrillsNotConfigured)]
        );
    }

    #[test]
    fn null_fields_ask_for_nothing() {
        let value = serde_json::json!({"taskToken": null, "drill": null});
        let nothing = FollowCapacity {
            work_queue: false,
            drill_table: false,
        };
        assert!(follow_requirements(&value, Trigger::Schedule, nothing).is_empty());
    }
}

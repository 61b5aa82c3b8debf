//! `infra/template.yaml` as CloudFormation receives it: translated by AWS SAM's own translator
//! (`samtranslator`, pinned in infra/requirements.txt and installed into infra/.venv by
//! `make lint-infra`, so by `make test`), once with the defaults and once with every option on.
//! The translated template's parameters, rules and conditions are then evaluated for those
//! values the way CloudFormation evaluates them before it creates anything, and the resources
//! and outputs that would exist are checked against what the README's Deploy, Rolling back and
//! Alarms sections promise (issue 17): the access-log group under `/aws/vendedlogs/`, the
//! queue brake (`WorkQueueEnabled` drives the event source mapping's `Enabled`), the rules on
//! `ReservedConcurrency`, the ARN outputs of both failure queues, the `STALLED` alarm, the
//! `AllowedPattern`s of the VPC parameters, and the reuse of an existing idempotency table.
//!
//! The interpreter is `$ATLAS_RUNNER_INFRA_PYTHON` (the Makefile exports it), else
//! infra/.venv/bin/python.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value, json};

const ATLAS_SECRET: &str =
    "arn:aws:secretsmanager:eu-central-1:123456789012:secret:atlas-restore-runner/atlas-AbCdEf";
const WEBHOOK_SECRET: &str =
    "arn:aws:secretsmanager:eu-central-1:123456789012:secret:atlas-restore-runner/webhook-GhIjKl";
const KEPT_TABLE: &str = "atlas-restore-runner-IdempotencyTable-1A2B3C4D5E6F";

/// Translates the template with samtranslator; prints {"version", "template"}. `sam deploy`
/// uploads the bundle first and puts its S3 address in CodeUri; the script does the same with
/// a made-up address. The template names no managed policy, so no policy map is loaded.
const TRANSLATE: &str = r#"
import json, sys
import samtranslator
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class NoManagedPolicies:
    def load(self):
        return {}

with open(sys.argv[1]) as f:
    template = yaml_parse(f.read())
template["Resources"]["RestoreFunction"]["Properties"]["CodeUri"] = "s3://sam-cli-managed/bootstrap.zip"
translated = transform(template, json.loads(sys.argv[2]), NoManagedPolicies())
print(json.dumps({"version": samtranslator.__version__, "template": translated}))
"#;

fn repo_path(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn python() -> PathBuf {
    let python = std::env::var_os("ATLAS_RUNNER_INFRA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path("infra/.venv/bin/python"));
    assert!(
        python.exists(),
        "{} does not exist: run `make lint-infra` (or `make test`), which installs infra/requirements.txt into infra/.venv",
        python.display()
    );
    python
}

/// The version infra/requirements.txt pins.
fn pinned_translator() -> String {
    let requirements = std::fs::read_to_string(repo_path("infra/requirements.txt"))
        .expect("infra/requirements.txt");
    requirements
        .lines()
        .find_map(|l| l.trim().strip_prefix("aws-sam-translator=="))
        .expect("infra/requirements.txt pins aws-sam-translator")
        .to_owned()
}

fn translate(parameters: &[(&str, &str)]) -> Value {
    let values: Map<String, Value> = parameters
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let output = Command::new(python())
        .arg("-c")
        .arg(TRANSLATE)
        .arg(repo_path("infra/template.yaml"))
        .arg(Value::Object(values).to_string())
        // No AWS call is made; a region keeps boto3 from looking for one, and no instance
        // metadata is ever asked for.
        .env("AWS_DEFAULT_REGION", "eu-central-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("the infra venv's python runs");
    assert!(
        output.status.success(),
        "samtranslator refused the template:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("the script prints JSON");
    assert_eq!(
        answer["version"].as_str(),
        Some(pinned_translator().as_str()),
        "infra/.venv holds the samtranslator infra/requirements.txt pins (run `make lint-infra`)"
    );
    answer["template"].clone()
}

fn required() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AtlasSecretArn", ATLAS_SECRET),
        ("WebhookSecretArn", WEBHOOK_SECRET),
    ]
}

/// Every parameter that turns something on or away from its default.
fn every_option_on() -> Vec<(&'static str, &'static str)> {
    let mut all = required();
    all.extend([
        (
            "SecretsKmsKeyArn",
            "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
        ("Approvers", "U0G9QF9C6,U0AAAAAAA"),
        ("ProtectedClusters", "orders,5e2211c17a3e5a48f5497de3/payments"),
        ("DryRun", "true"),
        ("NotifyFormat", "json"),
        ("IdempotencyTtlSeconds", "604800"),
        ("ExistingIdempotencyTableName", KEPT_TABLE),
        ("FollowJobs", "true"),
        ("FollowIntervalSeconds", "900"),
        ("FollowMaxHours", "72"),
        (
            "DrillCommand",
            r#"{"groupId": "5e2211c17a3e5a48f5497de3", "clusterName": "orders", "restorePoint": "latestSnapshot", "restore": {"delivery": {"methodName": "AUTOMATED_RESTORE", "targetGroupId": "5e2211c17a3e5a48f5497de3", "targetClusterName": "orders-drill"}}, "requestedBy": "scheduler:drill", "reason": "monthly DR drill", "drill": {"name": "orders-monthly", "rtoTargetMinutes": 120, "rpoTargetMinutes": 1440}}"#,
        ),
        ("DrillScheduleTimezone", "Europe/Berlin"),
        (
            "VpcSubnetIds",
            "subnet-0a1b2c3d,subnet-0123456789abcdef0",
        ),
        ("VpcSecurityGroupIds", "sg-0123456789abcdef0"),
        ("LogRetentionDays", "731"),
        ("ReservedConcurrency", "10"),
        ("WorkQueueEnabled", "false"),
    ]);
    all
}

fn defaults_translated() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| translate(&required()))
}

fn every_option_translated() -> &'static Value {
    static T: OnceLock<Value> = OnceLock::new();
    T.get_or_init(|| translate(&every_option_on()))
}

// --- CloudFormation's evaluation of parameters, rules and conditions ---------------------------

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The parameter values CloudFormation would accept, or why it refuses them. Every parameter
/// constraint the template uses is checked: Type Number, MinValue, MaxValue, AllowedValues and
/// AllowedPattern (which must match the whole value).
fn parameter_values(
    template: &Value,
    given: &[(&str, &str)],
) -> Result<BTreeMap<String, String>, String> {
    let declared = template["Parameters"].as_object().expect("Parameters");
    for (name, _) in given {
        if !declared.contains_key(*name) {
            return Err(format!("the template has no parameter {name}"));
        }
    }
    let mut values = BTreeMap::new();
    for (name, declaration) in declared {
        let value = match given.iter().find(|(n, _)| n == name) {
            Some((_, v)) => (*v).to_owned(),
            None => match declaration.get("Default") {
                Some(default) => scalar(default),
                None => return Err(format!("{name} has no default and was not given")),
            },
        };
        if declaration["Type"] == "Number" {
            let number: f64 = value
                .parse()
                .map_err(|_| format!("{name}: {value:?} is not a number"))?;
            if let Some(min) = declaration["MinValue"].as_f64()
                && number < min
            {
                return Err(format!("{name}: {value} is below MinValue {min}"));
            }
            if let Some(max) = declaration["MaxValue"].as_f64()
                && number > max
            {
                return Err(format!("{name}: {value} is above MaxValue {max}"));
            }
        }
        if let Some(allowed) = declaration["AllowedValues"].as_array()
            && !allowed.iter().any(|a| scalar(a) == value)
        {
            return Err(format!("{name}: {value:?} is not an allowed value"));
        }
        if let Some(pattern) = declaration["AllowedPattern"].as_str() {
            let whole = Regex::new(&format!("^(?:{pattern})$"))
                .unwrap_or_else(|e| panic!("{name}: AllowedPattern {pattern:?}: {e}"));
            if !whole.is_match(&value) {
                return Err(format!("{name}: {value:?} does not match {pattern}"));
            }
        }
        values.insert(name.clone(), value);
    }
    Ok(values)
}

fn single<'a>(value: &'a Value, what: &str) -> (&'a str, &'a Value) {
    let object = value
        .as_object()
        .filter(|o| o.len() == 1)
        .unwrap_or_else(|| panic!("{what}: not a one-key function: {value}"));
    let (key, argument) = object.iter().next().expect("one key");
    (key.as_str(), argument)
}

fn arguments<'a>(argument: &'a Value, what: &str) -> &'a [Value] {
    argument
        .as_array()
        .unwrap_or_else(|| panic!("{what}: arguments are a list: {argument}"))
}

/// A string in a rule or a condition: a literal or a parameter's value.
fn text(value: &Value, parameters: &BTreeMap<String, String>) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(_) => match single(value, "a string") {
            ("Ref", Value::String(name)) => parameters
                .get(name)
                .unwrap_or_else(|| panic!("Ref to {name}, which is no parameter"))
                .clone(),
            other => panic!("an unsupported function where a string is expected: {other:?}"),
        },
        other => scalar(other),
    }
}

/// A rule's condition or assertion, or a Conditions entry (with `conditions` to look others up).
fn truth(
    value: &Value,
    parameters: &BTreeMap<String, String>,
    conditions: Option<&Map<String, Value>>,
) -> bool {
    let (function, argument) = single(value, "a condition");
    let all = |what| arguments(argument, what);
    match function {
        "Fn::And" => all("Fn::And")
            .iter()
            .all(|c| truth(c, parameters, conditions)),
        "Fn::Or" => all("Fn::Or")
            .iter()
            .any(|c| truth(c, parameters, conditions)),
        "Fn::Not" => !truth(&all("Fn::Not")[0], parameters, conditions),
        "Fn::Equals" => {
            let pair = all("Fn::Equals");
            text(&pair[0], parameters) == text(&pair[1], parameters)
        }
        "Fn::Contains" => {
            let pair = all("Fn::Contains");
            let needle = text(&pair[1], parameters);
            arguments(&pair[0], "Fn::Contains")
                .iter()
                .any(|item| text(item, parameters) == needle)
        }
        "Condition" => {
            let name = argument.as_str().expect("a condition name");
            let conditions = conditions.expect("Condition is used in Conditions only");
            truth(&conditions[name], parameters, Some(conditions))
        }
        other => panic!("a function this evaluator does not know: {other}"),
    }
}

/// The AssertDescription of every assertion that fails: CloudFormation refuses the stack
/// operation when there is any.
fn broken_rules(template: &Value, parameters: &BTreeMap<String, String>) -> Vec<String> {
    let mut broken = Vec::new();
    for (name, rule) in template["Rules"].as_object().expect("Rules") {
        if let Some(condition) = rule.get("RuleCondition")
            && !truth(condition, parameters, None)
        {
            continue;
        }
        for assertion in arguments(&rule["Assertions"], name) {
            if !truth(&assertion["Assert"], parameters, None) {
                broken.push(format!(
                    "{name}: {}",
                    assertion["AssertDescription"].as_str().unwrap_or_default()
                ));
            }
        }
    }
    broken
}

/// What CloudFormation accepts for these values: the parameter values, or why it refuses.
fn accepted(template: &Value, given: &[(&str, &str)]) -> Result<BTreeMap<String, String>, String> {
    let parameters = parameter_values(template, given)?;
    let broken = broken_rules(template, &parameters);
    if broken.is_empty() {
        Ok(parameters)
    } else {
        Err(broken.join("; "))
    }
}

struct Deployed {
    resources: Map<String, Value>,
    outputs: Map<String, Value>,
}

impl Deployed {
    /// The resources and outputs that exist for these values, with every `Fn::If` decided,
    /// `AWS::NoValue` removed, and parameters substituted in `Ref`, `Fn::Sub` and `Fn::Split`.
    fn new(template: &Value, given: &[(&str, &str)]) -> Self {
        let parameters = accepted(template, given).unwrap_or_else(|why| panic!("refused: {why}"));
        let declared = template["Conditions"].as_object().expect("Conditions");
        let conditions: BTreeMap<String, bool> = declared
            .iter()
            .map(|(name, c)| (name.clone(), truth(c, &parameters, Some(declared))))
            .collect();
        let keep = |section: &str| -> Map<String, Value> {
            template[section]
                .as_object()
                .unwrap_or_else(|| panic!("{section}"))
                .iter()
                .filter(|(_, v)| {
                    v.get("Condition")
                        .and_then(Value::as_str)
                        .is_none_or(|c| conditions[c])
                })
                .filter_map(|(k, v)| resolve(v, &parameters, &conditions).map(|v| (k.clone(), v)))
                .collect()
        };
        Deployed {
            resources: keep("Resources"),
            outputs: keep("Outputs"),
        }
    }

    fn resource(&self, name: &str) -> &Value {
        self.resources
            .get(name)
            .unwrap_or_else(|| panic!("no resource {name}"))
    }

    fn properties(&self, name: &str) -> &Value {
        &self.resource(name)["Properties"]
    }

    fn of_type(&self, kind: &str) -> Vec<(&String, &Value)> {
        self.resources
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .collect()
    }

    fn output(&self, name: &str) -> &Value {
        &self
            .outputs
            .get(name)
            .unwrap_or_else(|| panic!("no output {name}"))["Value"]
    }

    /// The translated event source mapping of the work queue.
    fn work_queue_mapping(&self) -> &Value {
        let mappings = self.of_type("AWS::Lambda::EventSourceMapping");
        assert_eq!(mappings.len(), 1, "one event source mapping");
        let (_, mapping) = mappings[0];
        assert_eq!(
            mapping["Properties"]["EventSourceArn"],
            json!({"Fn::GetAtt": ["WorkQueue", "Arn"]})
        );
        &mapping["Properties"]
    }

    /// The identity statements of the function's role, by Sid.
    fn function_statement(&self, sid: &str) -> Value {
        self.properties("RestoreFunctionRole")["Policies"]
            .as_array()
            .expect("Policies")
            .iter()
            .flat_map(|p| {
                p["PolicyDocument"]["Statement"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
    }
}

fn resolve(
    value: &Value,
    parameters: &BTreeMap<String, String>,
    conditions: &BTreeMap<String, bool>,
) -> Option<Value> {
    match value {
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|i| resolve(i, parameters, conditions))
                .collect(),
        )),
        Value::Object(object) if object.len() == 1 => {
            let (key, argument) = object.iter().next().expect("one key");
            match (key.as_str(), argument) {
                ("Fn::If", Value::Array(branches)) => {
                    let name = branches[0].as_str().expect("a condition name");
                    let chosen = if conditions[name] {
                        &branches[1]
                    } else {
                        &branches[2]
                    };
                    resolve(chosen, parameters, conditions)
                }
                ("Ref", Value::String(name)) if name == "AWS::NoValue" => None,
                ("Ref", Value::String(name)) if parameters.contains_key(name) => {
                    Some(json!(parameters[name]))
                }
                ("Fn::Sub", Value::String(text)) => {
                    let mut text = text.clone();
                    for (name, value) in parameters {
                        text = text.replace(&format!("${{{name}}}"), value);
                    }
                    Some(json!({ "Fn::Sub": text }))
                }
                ("Fn::Split", Value::Array(pair)) => {
                    let delimiter = pair[0].as_str().expect("a delimiter");
                    match resolve(&pair[1], parameters, conditions) {
                        Some(Value::String(s)) => {
                            Some(json!(s.split(delimiter).collect::<Vec<_>>()))
                        }
                        other => Some(json!({ "Fn::Split": [delimiter, other] })),
                    }
                }
                _ => Some(json!({ key.clone(): resolve(argument, parameters, conditions)? })),
            }
        }
        Value::Object(object) => Some(Value::Object(
            object
                .iter()
                .filter_map(|(k, v)| resolve(v, parameters, conditions).map(|v| (k.clone(), v)))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

fn reference(name: &str) -> Value {
    json!({ "Ref": name })
}

fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all: Vec<_> = base
        .iter()
        .filter(|(k, _)| !more.iter().any(|(m, _)| m == k))
        .copied()
        .collect();
    all.extend_from_slice(more);
    all
}

// --- the checks ----------------------------------------------------------------------------------

/// Issue 17, finding 1: the access-log group is under /aws/vendedlogs/, so a nearly full
/// account-wide log-delivery resource policy cannot block the stage.
#[test]
fn the_webhook_s_access_logs_go_to_a_vendedlogs_group() {
    for (case, template, given) in [
        ("defaults", defaults_translated(), required()),
        (
            "every option on",
            every_option_translated(),
            every_option_on(),
        ),
    ] {
        let stack = Deployed::new(template, &given);
        let stages = stack.of_type("AWS::ApiGatewayV2::Stage");
        assert_eq!(stages.len(), 1, "{case}: one stage");
        let access = &stages[0].1["Properties"]["AccessLogSettings"];
        assert_eq!(
            access["DestinationArn"],
            get_att("WebhookAccessLogGroup", "Arn"),
            "{case}"
        );
        let name = stack.properties("WebhookAccessLogGroup")["LogGroupName"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: the group is named"));
        assert!(
            name.starts_with("/aws/vendedlogs/"),
            "{case}: {name} is not under /aws/vendedlogs/"
        );
    }
}

/// Issue 17, finding 2: WorkQueueEnabled is the queue brake: it decides `Enabled` of the
/// translated event source mapping (true by default).
#[test]
fn work_queue_enabled_drives_the_event_source_mapping() {
    let defaults = Deployed::new(defaults_translated(), &required());
    assert_eq!(defaults.work_queue_mapping()["Enabled"], "true");
    let braked = Deployed::new(
        defaults_translated(),
        &with(&required(), &[("WorkQueueEnabled", "false")]),
    );
    assert_eq!(braked.work_queue_mapping()["Enabled"], "false");
    let all = Deployed::new(every_option_translated(), &every_option_on());
    assert_eq!(all.work_queue_mapping()["Enabled"], "false");
    // As the translator passes it on: the parameter itself, not a value fixed at translation.
    let mapping = defaults_translated()["Resources"]
        .as_object()
        .expect("Resources")
        .values()
        .find(|r| r["Type"] == "AWS::Lambda::EventSourceMapping")
        .expect("the mapping");
    assert_eq!(
        mapping["Properties"]["Enabled"],
        reference("WorkQueueEnabled")
    );
    assert!(
        parameter_values(
            defaults_translated(),
            &with(&required(), &[("WorkQueueEnabled", "off")])
        )
        .is_err(),
        "only true or false"
    );
}

/// Issue 17, finding 3: ReservedConcurrency cannot undercut the work queue's
/// MaximumConcurrency (plus 2 for the webhook), and 0 (the brake) comes with the queue brake.
#[test]
fn reserved_concurrency_cannot_undercut_the_work_queue() {
    let template = defaults_translated();
    let stack = Deployed::new(template, &required());
    let maximum = stack.work_queue_mapping()["ScalingConfig"]["MaximumConcurrency"]
        .as_u64()
        .expect("the work queue has a MaximumConcurrency");
    let minimum = maximum + 2;
    let reserved = |value: String, queue: &str| {
        accepted(
            template,
            &with(
                &required(),
                &[
                    ("ReservedConcurrency", value.as_str()),
                    ("WorkQueueEnabled", queue),
                ],
            ),
        )
    };
    for n in 1..minimum {
        let refused = reserved(n.to_string(), "true").expect_err("undercuts the queue");
        assert!(
            refused.contains("MaximumConcurrency"),
            "{n}: the refusal names the reason: {refused}"
        );
    }
    for ok in [-1_i64, minimum as i64, 10, 1000] {
        reserved(ok.to_string(), "true").unwrap_or_else(|e| panic!("{ok} is refused: {e}"));
    }
    let zero = reserved("0".into(), "true").expect_err("0 with the queue still polled");
    assert!(zero.contains("WorkQueueEnabled=false"), "{zero}");
    reserved("0".into(), "false").expect("the brake: 0 with the queue brake");

    // When reserved, the function gets exactly the value.
    let all = Deployed::new(every_option_translated(), &every_option_on());
    assert_eq!(
        all.properties("RestoreFunction")["ReservedConcurrentExecutions"],
        "10"
    );
    assert!(
        stack
            .properties("RestoreFunction")
            .get("ReservedConcurrentExecutions")
            .is_none(),
        "nothing reserved by default"
    );
}

/// Issue 17, finding 4: both failure queues have an ARN output (start-message-move-task
/// takes ARNs), whatever the options.
#[test]
fn both_failure_queues_have_arn_outputs() {
    for (template, given) in [
        (defaults_translated(), required()),
        (every_option_translated(), every_option_on()),
    ] {
        let stack = Deployed::new(template, &given);
        assert_eq!(
            stack.output("WorkQueueDeadLetterQueueArn"),
            &get_att("WorkQueueDeadLetterQueue", "Arn")
        );
        assert_eq!(
            stack.output("AsyncFailureQueueArn"),
            &get_att("AsyncFailureQueue", "Arn")
        );
        // The queue the function's asynchronous failures go to is the one named.
        let config = stack.of_type("AWS::Lambda::EventInvokeConfig");
        assert_eq!(config.len(), 1);
        assert_eq!(
            config[0].1["Properties"]["DestinationConfig"]["OnFailure"]["Destination"],
            get_att("AsyncFailureQueue", "Arn")
        );
    }
}

/// Issue 17, finding 7: STALLED raises an alarm shaped like the UNKNOWN, FAILED and BROKEN
/// ones: same metric, statistic, period, threshold and topic; only the outcome differs.
#[test]
fn a_stalled_outcome_raises_an_alarm_like_the_others() {
    let stack = Deployed::new(defaults_translated(), &required());
    let shape = |outcome: &str| -> Map<String, Value> {
        let alarms: Vec<&Value> = stack
            .of_type("AWS::CloudWatch::Alarm")
            .into_iter()
            .map(|(_, a)| &a["Properties"])
            .filter(|p| {
                p["Namespace"] == "AtlasRestoreRunner"
                    && p["Dimensions"] == json!([{"Name": "Outcome", "Value": outcome}])
            })
            .collect();
        assert_eq!(alarms.len(), 1, "one alarm on {outcome}");
        let mut shape = alarms[0].as_object().expect("properties").clone();
        let description = shape
            .remove("AlarmDescription")
            .and_then(|d| d.as_str().map(str::to_owned))
            .unwrap_or_default();
        assert!(
            description.starts_with(outcome),
            "the {outcome} alarm says which outcome: {description}"
        );
        shape.remove("Dimensions");
        shape
    };
    let stalled = shape("STALLED");
    for other in ["UNKNOWN", "FAILED", "BROKEN"] {
        assert_eq!(stalled, shape(other), "STALLED against {other}");
    }
    assert_eq!(stalled["AlarmActions"], json!([reference("AlarmTopic")]));
}

/// Issue 17, finding 8: a malformed VPC list is refused as a parameter, before anything is
/// created.
#[test]
fn the_vpc_parameters_refuse_malformed_lists() {
    let template = defaults_translated();
    let vpc = |subnets: &str, groups: &str| {
        accepted(
            template,
            &with(
                &required(),
                &[("VpcSubnetIds", subnets), ("VpcSecurityGroupIds", groups)],
            ),
        )
    };
    for (subnets, groups) in [
        ("subnet-a, subnet-b", "sg-0123abcd"),
        ("subnet-0a1b2c3d, subnet-0a1b2c3e", "sg-0123abcd"),
        ("subnet-0a1b2c3d;subnet-0a1b2c3e", "sg-0123abcd"),
        ("subnet-0A1B2C3D", "sg-0123abcd"),
        ("subnet-0a1b2c3d,", "sg-0123abcd"),
        ("subnet-0a1b2c3d", "sg-0123abcd, sg-0123abce"),
        ("subnet-0a1b2c3d", "subnet-0a1b2c3e"),
        ("sg-0123abcd", "sg-0123abcd"),
        ("subnet-0a1b2c3d", ""),
        ("", "sg-0123abcd"),
    ] {
        assert!(
            vpc(subnets, groups).is_err(),
            "{subnets:?} / {groups:?} is accepted"
        );
    }
    for (subnets, groups) in [
        ("", ""),
        ("subnet-0a1b2c3d", "sg-0123abcd"),
        (
            "subnet-0a1b2c3d,subnet-0123456789abcdef0",
            "sg-0123abcd,sg-0123456789abcdef0",
        ),
    ] {
        vpc(subnets, groups).unwrap_or_else(|e| panic!("{subnets:?} / {groups:?}: {e}"));
    }
    let all = Deployed::new(every_option_translated(), &every_option_on());
    assert_eq!(
        all.properties("RestoreFunction")["VpcConfig"]["SubnetIds"],
        json!(["subnet-0a1b2c3d", "subnet-0123456789abcdef0"])
    );
}

/// Issue 17, finding 9: ExistingIdempotencyTableName makes the stack use that table: none is
/// created, and the function, its grant and the output all name the given table. Without it
/// the stack creates (and retains) its own.
#[test]
fn an_existing_idempotency_table_is_used_instead_of_a_new_one() {
    let created = Deployed::new(defaults_translated(), &required());
    let tables = created.of_type("AWS::DynamoDB::Table");
    let names: Vec<&str> = tables.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["DrillTable", "IdempotencyTable"]);
    let tables: Vec<_> = tables
        .into_iter()
        .filter(|(name, _)| name.as_str() == "IdempotencyTable")
        .collect();
    assert_eq!(tables[0].1["DeletionPolicy"], "Retain");
    assert_eq!(
        created.properties("RestoreFunction")["Environment"]["Variables"]["IDEMPOTENCY_TABLE"],
        reference("IdempotencyTable")
    );
    assert_eq!(
        created.function_statement("IdempotencyRecords")["Resource"],
        get_att("IdempotencyTable", "Arn")
    );
    assert_eq!(
        created.output("IdempotencyTableName"),
        &reference("IdempotencyTable")
    );

    let reused = Deployed::new(every_option_translated(), &every_option_on());
    let tables: Vec<String> = reused
        .of_type("AWS::DynamoDB::Table")
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        tables,
        ["DrillTable"],
        "no idempotency table is created when one is named (the drill table always is)"
    );
    assert_eq!(
        reused.properties("RestoreFunction")["Environment"]["Variables"]["IDEMPOTENCY_TABLE"],
        KEPT_TABLE
    );
    let grant = reused.function_statement("IdempotencyRecords");
    assert_eq!(
        grant["Resource"],
        json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:dynamodb:${{AWS::Region}}:${{AWS::AccountId}}:table/{KEPT_TABLE}")}),
        "the grant is on that table alone"
    );
    assert_eq!(
        grant["Action"],
        json!([
            "dynamodb:PutItem",
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem"
        ])
    );
    assert_eq!(reused.output("IdempotencyTableName"), KEPT_TABLE);
    // No resource refers to a table that does not exist.
    let text = Value::Object(reused.resources.clone()).to_string();
    assert!(
        !text.contains("\"IdempotencyTable\""),
        "a reference to the table that is not created"
    );

    for bad in [
        "my table",
        "ab",
        "arn:aws:dynamodb:eu-central-1:123456789012:table/t",
    ] {
        assert!(
            parameter_values(
                defaults_translated(),
                &with(&required(), &[("ExistingIdempotencyTableName", bad)])
            )
            .is_err(),
            "{bad:?} is accepted as a table name"
        );
    }
}

/// Every option on: the optional resources exist and the translated template still holds
/// together (the drill, the secrets key, the network).
#[test]
fn every_option_on_creates_the_optional_resources() {
    let all = Deployed::new(every_option_translated(), &every_option_on());
    for name in ["DrillSchedule", "DrillSchedulerRole"] {
        all.resource(name);
    }
    all.function_statement("DecryptTheSecretsKey");
    all.function_statement("VpcNetworkInterfacesManage");
    let defaults = Deployed::new(defaults_translated(), &required());
    assert!(!defaults.resources.contains_key("DrillSchedule"));
    assert!(
        defaults
            .properties("RestoreFunction")
            .get("VpcConfig")
            .is_none()
    );
}

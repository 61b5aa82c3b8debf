//! The AWS SAM template in `infra/` keeps the promises of its issue, so that a later edit cannot
//! quietly widen them: every IAM statement grants exactly the listed actions on exactly the
//! listed resources; `"*"` appears only where AWS offers no resource-level permission (and says
//! so in a comment); the two secrets are parameters, never resources; KMS is reachable only for
//! the given secrets key, only when given; the data is encrypted; the table, the queue, the event
//! source, the drill schedule, the alarms and the environment match the contract and the code.
//!
//! The template uses CloudFormation's short-form tags (`!Ref`, `!Sub`, `!GetAtt`, `!If`); they
//! are read as their long forms (`{"Ref": ..}`, `{"Fn::Sub": ..}`, ...) before any check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use atlas_restore_runner::config::{MAX_FOLLOW_INTERVAL_SECONDS, MIN_IDEMPOTENCY_TTL_SECONDS};
use atlas_restore_runner::outcome::OutcomeKind;
use atlas_restore_runner::telemetry::{METRIC_NAMESPACE, metric_line};
use chrono::Utc;
use serde_json::{Map, Value, json};

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn template_text() -> String {
    repo_file("infra/template.yaml")
}

fn template() -> Value {
    let yaml: serde_norway::Value =
        serde_norway::from_str(&template_text()).expect("infra/template.yaml is YAML");
    long_form(yaml)
}

/// YAML to JSON, with every short-form tag in its long form.
fn long_form(yaml: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).expect("a YAML number is a JSON number"),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(long_form).collect()),
        Y::Mapping(mapping) => Value::Object(
            mapping
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        other => panic!("a non-string mapping key in the template: {other:?}"),
                    };
                    (key, long_form(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = long_form(tagged.value);
            match name {
                "Ref" | "Condition" => json!({ name: value }),
                // `!GetAtt A.B` is the string form of `Fn::GetAtt: [A, B]`.
                "GetAtt" => match value {
                    Value::String(s) => {
                        let (resource, attribute) = s
                            .split_once('.')
                            .unwrap_or_else(|| panic!("!GetAtt {s} names no attribute"));
                        json!({"Fn::GetAtt": [resource, attribute]})
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                _ => json!({ format!("Fn::{name}"): value }),
            }
        }
    }
}

fn r#ref(name: &str) -> Value {
    json!({ "Ref": name })
}

fn get_att(resource: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [resource, attribute] })
}

fn no_value() -> Value {
    r#ref("AWS::NoValue")
}

fn resources(t: &Value) -> &Map<String, Value> {
    t["Resources"].as_object().expect("Resources")
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    resources(t)
        .get(name)
        .unwrap_or_else(|| panic!("the template has no resource {name}"))
}

fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

/// A string or a list of them, as a set.
fn string_set(value: &Value) -> BTreeSet<String> {
    match value {
        Value::String(s) => BTreeSet::from([s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .unwrap_or_else(|| panic!("not a string: {i}"))
                    .to_owned()
            })
            .collect(),
        other => panic!("neither a string nor a list of strings: {other}"),
    }
}

/// One value or a list of them, as a list.
fn listed(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// `Fn::If [condition, then, AWS::NoValue]` as (Some(condition), then); anything else as
/// (None, itself). An `else` branch with content is refused: this template grants nothing that
/// way, and a test that skipped it would miss a grant.
fn unless_no_value(value: &Value) -> (Option<String>, Value) {
    if let Some(branches) = value.get("Fn::If").and_then(Value::as_array) {
        assert_eq!(branches.len(), 3, "Fn::If takes three arguments: {value}");
        assert_eq!(
            branches[2],
            no_value(),
            "an Fn::If whose else branch grants something: {value}"
        );
        let condition = branches[0].as_str().expect("a condition name").to_owned();
        (Some(condition), branches[1].clone())
    } else {
        (None, value.clone())
    }
}

/// One IAM statement as the template grants it.
#[derive(Debug)]
struct Grant {
    owner: String,
    sid: String,
    /// The CloudFormation condition it exists under (the resource's, the policy's or its own).
    when: Option<String>,
    statement: Map<String, Value>,
}

impl Grant {
    fn actions(&self) -> BTreeSet<String> {
        string_set(&self.statement["Action"])
    }

    fn resources(&self) -> Vec<Value> {
        listed(&self.statement["Resource"])
    }
}

fn grants_of_document(owner: &str, when: Option<String>, document: &Value, out: &mut Vec<Grant>) {
    assert_eq!(document["Version"], "2012-10-17", "{owner}: policy version");
    for item in listed(&document["Statement"]) {
        let (condition, statement) = unless_no_value(&item);
        let statement = statement
            .as_object()
            .unwrap_or_else(|| panic!("{owner}: a statement that is no object: {statement}"))
            .clone();
        let sid = statement
            .get("Sid")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{owner}: every statement has a Sid: {statement:?}"))
            .to_owned();
        for key in ["NotAction", "NotResource", "NotPrincipal"] {
            assert!(
                !statement.contains_key(key),
                "{owner}/{sid}: {key} grants by exclusion"
            );
        }
        assert_eq!(statement["Effect"], "Allow", "{owner}/{sid}: Effect");
        out.push(Grant {
            owner: owner.to_owned(),
            sid,
            when: condition.or_else(|| when.clone()),
            statement,
        });
    }
}

/// Every IAM statement of every identity policy in the template.
fn iam_grants(t: &Value) -> Vec<Grant> {
    let mut grants = Vec::new();
    for (name, r) in resources(t) {
        let kind = r["Type"].as_str().unwrap_or_default();
        let when = r
            .get("Condition")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let properties = &r["Properties"];
        match kind {
            "AWS::IAM::Role" => {
                assert!(
                    properties.get("ManagedPolicyArns").is_none(),
                    "{name}: managed policies grant what this test cannot see"
                );
                for policy in listed(&properties["Policies"]) {
                    let (condition, policy) = unless_no_value(&policy);
                    grants_of_document(
                        name,
                        condition.or_else(|| when.clone()),
                        &policy["PolicyDocument"],
                        &mut grants,
                    );
                }
            }
            "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" | "AWS::IAM::RolePolicy" => {
                grants_of_document(name, when, &properties["PolicyDocument"], &mut grants)
            }
            "AWS::IAM::User" | "AWS::IAM::Group" | "AWS::IAM::AccessKey" => {
                panic!("{name}: the stack creates no IAM users, groups or keys")
            }
            "AWS::Serverless::Function" | "AWS::Serverless::StateMachine" => {
                // A SAM function with a Role gets no generated role; with Policies it would.
                assert!(
                    properties.get("Role").is_some() && properties.get("Policies").is_none(),
                    "{name}: use the explicit role, not SAM policy templates"
                );
            }
            _ => {}
        }
    }
    grants
}

/// What one statement may grant.
struct Expected {
    owner: &'static str,
    sid: &'static str,
    actions: Vec<&'static str>,
    resources: Vec<Value>,
    /// The CloudFormation condition it exists under.
    when: Option<&'static str>,
}

fn grant(
    owner: &'static str,
    sid: &'static str,
    actions: Vec<&'static str>,
    resources: Vec<Value>,
    when: Option<&'static str>,
) -> Expected {
    Expected {
        owner,
        sid,
        actions,
        resources,
        when,
    }
}

fn expected_grants() -> Vec<Expected> {
    let function = "RestoreFunctionRole";
    vec![
        grant(
            function,
            "WriteOwnLogs",
            vec!["logs:CreateLogStream", "logs:PutLogEvents"],
            vec![get_att("FunctionLogGroup", "Arn")],
            None,
        ),
        grant(
            function,
            "ReadTheTwoSecrets",
            vec!["secretsmanager:GetSecretValue"],
            vec![r#ref("AtlasSecretArn"), r#ref("WebhookSecretArn")],
            None,
        ),
        grant(
            function,
            "DecryptTheSecretsKey",
            vec!["kms:Decrypt"],
            vec![r#ref("SecretsKmsKeyArn")],
            Some("HasSecretsKmsKey"),
        ),
        grant(
            function,
            "PublishOutcomes",
            vec!["sns:Publish"],
            vec![r#ref("OutcomeTopic")],
            None,
        ),
        grant(
            function,
            "IdempotencyRecords",
            vec![
                "dynamodb:PutItem",
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ],
            // The table the stack creates, or the one ExistingIdempotencyTableName names.
            vec![json!({"Fn::If": [
                "CreateIdempotencyTable",
                get_att("IdempotencyTable", "Arn"),
                {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ExistingIdempotencyTableName}"}
            ]})],
            None,
        ),
        // Drill evidence (CONTRACT section 7): written once, read back; never changed or deleted.
        grant(
            function,
            "DrillEvidence",
            vec!["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query"],
            vec![get_att("DrillTable", "Arn")],
            None,
        ),
        grant(
            function,
            "WorkQueue",
            vec![
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            ],
            vec![get_att("WorkQueue", "Arn")],
            None,
        ),
        grant(
            function,
            "AsyncOnFailureDestination",
            vec!["sqs:SendMessage"],
            vec![get_att("AsyncFailureQueue", "Arn")],
            None,
        ),
        grant(
            function,
            "StepFunctionsTaskCallbacks",
            vec![
                "states:SendTaskSuccess",
                "states:SendTaskFailure",
                "states:SendTaskHeartbeat",
            ],
            vec![json!("*")],
            None,
        ),
        grant(
            function,
            "VpcNetworkInterfacesDescribe",
            vec!["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"],
            vec![json!("*")],
            Some("HasVpc"),
        ),
        grant(
            function,
            "VpcNetworkInterfacesManage",
            vec![
                "ec2:CreateNetworkInterface",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            vec![json!({
                "Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:*/*"
            })],
            Some("HasVpc"),
        ),
        grant(
            "DrillSchedulerRole",
            "InvokeTheRunner",
            vec!["lambda:InvokeFunction"],
            vec![get_att("RestoreFunction", "Arn")],
            Some("HasDrillCommand"),
        ),
        grant(
            "DrillSchedulerRole",
            "UndeliveredDrills",
            vec!["sqs:SendMessage"],
            vec![get_att("AsyncFailureQueue", "Arn")],
            Some("HasDrillCommand"),
        ),
    ]
}

/// The only statements allowed a `"*"` resource: actions with no resource-level permission.
const STAR_RESOURCE_EXCEPTIONS: &[(&str, &str)] = &[
    ("RestoreFunctionRole", "VpcNetworkInterfacesDescribe"),
    ("RestoreFunctionRole", "StepFunctionsTaskCallbacks"),
];

/// Actions that are neither Describe nor List and still support no resource-level
/// permission: a task token, not an ARN, names the task (CONTRACT section 8).
const NO_RESOURCE_LEVEL_ACTIONS: &[&str] = &[
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
];

#[test]
fn every_iam_statement_grants_exactly_the_listed_actions_on_the_listed_resources() {
    let t = template();
    let grants = iam_grants(&t);
    let expected = expected_grants();

    let mut seen = BTreeSet::new();
    for grant in &grants {
        let key = (grant.owner.as_str(), grant.sid.as_str());
        assert!(seen.insert(key), "{key:?} appears twice");
        let Some(Expected {
            actions,
            resources,
            when,
            ..
        }) = expected.iter().find(|e| (e.owner, e.sid) == key)
        else {
            panic!(
                "an IAM statement this test does not know: {grant:?}; add it to expected_grants() if it is needed"
            );
        };
        let actions: BTreeSet<String> = actions.iter().map(|a| a.to_string()).collect();
        assert_eq!(grant.actions(), actions, "{key:?}: actions");
        assert_eq!(&grant.resources(), resources, "{key:?}: resources");
        assert_eq!(
            grant.when.as_deref(),
            *when,
            "{key:?}: CloudFormation condition"
        );
        for action in grant.actions() {
            assert!(!action.contains('*'), "{key:?}: a wildcard action {action}");
        }
    }
    let missing: Vec<_> = expected
        .iter()
        .map(|e| (e.owner, e.sid))
        .filter(|key| !seen.contains(key))
        .collect();
    assert!(
        missing.is_empty(),
        "statements gone from the template: {missing:?}"
    );
}

#[test]
fn no_star_resource_but_where_aws_offers_no_resource_level_permission() {
    let t = template();
    for grant in iam_grants(&t) {
        let star = grant.resources().iter().any(|r| r == "*");
        let key = (grant.owner.as_str(), grant.sid.as_str());
        if star {
            assert!(
                STAR_RESOURCE_EXCEPTIONS.contains(&key),
                "{key:?} grants on every resource"
            );
            for action in grant.actions() {
                let verb = action.split_once(':').map(|(_, v)| v).unwrap_or("");
                assert!(
                    verb.starts_with("Describe")
                        || verb.starts_with("List")
                        || NO_RESOURCE_LEVEL_ACTIONS.contains(&action.as_str()),
                    "{key:?}: {action} has resource-level permissions; name its resources"
                );
            }
        }
    }
    // Each `Resource: "*"` line of the template says why, on the line or just above it.
    let text = template_text();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("Resource: \"*\"") {
            let commented = line.contains('#')
                || lines[..i]
                    .last()
                    .is_some_and(|above| above.trim_start().starts_with('#'));
            assert!(
                commented,
                "template line {}: a \"*\" resource without a comment saying why",
                i + 1
            );
        }
    }
}

#[test]
fn the_secrets_are_parameters_and_kms_is_only_the_given_key_only_when_given() {
    let t = template();
    assert!(
        of_type(&t, "AWS::SecretsManager::Secret").is_empty(),
        "the template must not create a secret (its value would sit in the template or the stack)"
    );
    for name in ["AtlasSecretArn", "WebhookSecretArn"] {
        let parameter = &t["Parameters"][name];
        assert_eq!(parameter["Type"], "String", "{name}");
        assert!(parameter.get("Default").is_none(), "{name} has no default");
        let pattern = parameter["AllowedPattern"].as_str().unwrap_or_default();
        assert!(
            pattern.contains(":secretsmanager:") && pattern.contains(":secret:"),
            "{name} accepts only a secret ARN: {pattern}"
        );
    }
    let key = &t["Parameters"]["SecretsKmsKeyArn"];
    assert_eq!(key["Default"], "", "the KMS key is optional");
    assert_eq!(
        t["Conditions"]["HasSecretsKmsKey"],
        json!({"Fn::Not": [{"Fn::Equals": [r#ref("SecretsKmsKeyArn"), ""]}]})
    );

    let grants = iam_grants(&t);
    let kms: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.actions().iter().any(|a| a.starts_with("kms:")))
        .collect();
    assert_eq!(kms.len(), 1, "one KMS statement: {kms:?}");
    let decrypt = kms[0];
    assert_eq!(
        decrypt.actions(),
        BTreeSet::from(["kms:Decrypt".to_owned()])
    );
    assert_eq!(decrypt.resources(), vec![r#ref("SecretsKmsKeyArn")]);
    assert_eq!(decrypt.when.as_deref(), Some("HasSecretsKmsKey"));
    assert_eq!(
        decrypt.statement["Condition"],
        json!({"StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}}),
        "the key is usable only through Secrets Manager"
    );

    // The secrets reach the function by ARN, and nothing else reads them.
    let variables = &resource(&t, "RestoreFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(variables["ATLAS_SECRET_ID"], r#ref("AtlasSecretArn"));
    assert_eq!(variables["WEBHOOK_SECRET_ID"], r#ref("WebhookSecretArn"));
    let readers: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.actions().iter().any(|a| a.starts_with("secretsmanager:")))
        .collect();
    assert_eq!(readers.len(), 1, "{readers:?}");
}

#[test]
fn the_roles_trust_only_their_service() {
    let t = template();
    for (role, service) in [
        ("RestoreFunctionRole", "lambda.amazonaws.com"),
        ("DrillSchedulerRole", "scheduler.amazonaws.com"),
    ] {
        let statements =
            listed(&resource(&t, role)["Properties"]["AssumeRolePolicyDocument"]["Statement"]);
        assert_eq!(statements.len(), 1, "{role}");
        assert_eq!(
            statements[0]["Principal"],
            json!({"Service": service}),
            "{role}"
        );
        assert_eq!(statements[0]["Action"], "sts:AssumeRole", "{role}");
    }
    let scheduler = &listed(
        &resource(&t, "DrillSchedulerRole")["Properties"]["AssumeRolePolicyDocument"]["Statement"],
    )[0];
    assert_eq!(
        scheduler["Condition"]["StringEquals"]["aws:SourceAccount"],
        r#ref("AWS::AccountId")
    );

    // The alarm topic's key: the account administers it, CloudWatch only encrypts for the topic.
    let key = &resource(&t, "AlarmTopicKey")["Properties"];
    assert_eq!(key["EnableKeyRotation"], true);
    let statements = listed(&key["KeyPolicy"]["Statement"]);
    assert_eq!(statements.len(), 2);
    assert_eq!(
        statements[0]["Principal"],
        json!({"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}})
    );
    assert_eq!(
        statements[1]["Principal"],
        json!({"Service": "cloudwatch.amazonaws.com"})
    );
    assert_eq!(
        string_set(&statements[1]["Action"]),
        BTreeSet::from(["kms:Decrypt".to_owned(), "kms:GenerateDataKey*".to_owned()])
    );
}

#[test]
fn the_data_is_encrypted_and_the_table_is_recoverable() {
    let t = template();
    let topics = of_type(&t, "AWS::SNS::Topic");
    assert!(!topics.is_empty());
    for (name, topic) in topics {
        assert!(
            topic["Properties"].get("KmsMasterKeyId").is_some(),
            "topic {name} is encrypted"
        );
    }
    let queues = of_type(&t, "AWS::SQS::Queue");
    assert_eq!(
        queues.len(),
        3,
        "work queue, its dead-letter queue, the on-failure queue"
    );
    for (name, queue) in queues {
        let p = &queue["Properties"];
        assert!(
            p["SqsManagedSseEnabled"] == true || p.get("KmsMasterKeyId").is_some(),
            "queue {name} is encrypted"
        );
    }

    let table = &resource(&t, "IdempotencyTable")["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "id", "KeyType": "HASH"}])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([{"AttributeName": "id", "AttributeType": "S"}])
    );
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({"AttributeName": "expiration", "Enabled": true})
    );
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true);
}

#[test]
fn drill_evidence_is_kept_for_good_and_recoverable() {
    let t = template();
    let drills = resource(&t, "DrillTable");
    assert_eq!(drills["Type"], "AWS::DynamoDB::Table");
    assert_eq!(drills["DeletionPolicy"], "Retain");
    assert_eq!(drills["UpdateReplacePolicy"], "Retain");
    assert!(drills.get("Condition").is_none(), "always there");
    let table = &drills["Properties"];
    assert_eq!(
        table["KeySchema"],
        json!([
            {"AttributeName": "drill", "KeyType": "HASH"},
            {"AttributeName": "startedAt", "KeyType": "RANGE"}
        ])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([
            {"AttributeName": "drill", "AttributeType": "S"},
            {"AttributeName": "startedAt", "AttributeType": "S"}
        ])
    );
    assert!(
        table.get("TimeToLiveSpecification").is_none(),
        "evidence never expires"
    );
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true);
    let variables = &resource(&t, "RestoreFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(variables["DRILL_TABLE"], r#ref("DrillTable"));
    // The API cannot be named in the function's own environment (SAM's HttpApi events make the
    // API depend on the function): the base URL is a parameter, empty until it is known.
    assert_eq!(variables["PUBLIC_BASE_URL"], r#ref("PublicBaseUrl"));
    let base = &t["Parameters"]["PublicBaseUrl"];
    assert_eq!(base["Default"], "");
    let pattern = regex::Regex::new(base["AllowedPattern"].as_str().unwrap()).unwrap();
    for ok in [
        "",
        "https://abc123.execute-api.eu-west-1.amazonaws.com",
        "https://dr.example.com/prod",
    ] {
        assert!(pattern.is_match(ok), "{ok}");
    }
    for bad in [
        "http://x.example.com",
        "https://x.example.com/",
        "https://x.example.com/?a=b",
    ] {
        assert!(!pattern.is_match(bad), "{bad}");
    }
}

#[test]
fn the_function_and_its_triggers_follow_the_issue() {
    let t = template();
    let function = &resource(&t, "RestoreFunction")["Properties"];
    assert_eq!(function["Runtime"], "provided.al2023");
    assert_eq!(function["Architectures"], json!(["arm64"]));
    assert_eq!(function["Handler"], "bootstrap");
    assert_eq!(
        function["CodeUri"],
        "../target/lambda/bootstrap/bootstrap.zip"
    );
    assert_eq!(function["Role"], get_att("RestoreFunctionRole", "Arn"));
    let timeout = function["Timeout"].as_u64().expect("a timeout");
    assert!(function["MemorySize"].as_u64().is_some());

    let events = function["Events"].as_object().expect("Events");
    let mut routes = BTreeSet::new();
    let mut queues = Vec::new();
    for event in events.values() {
        let p = &event["Properties"];
        match event["Type"].as_str() {
            Some("HttpApi") => {
                assert_eq!(p["ApiId"], r#ref("WebhookApi"));
                assert_eq!(p["PayloadFormatVersion"], "2.0");
                routes.insert(format!(
                    "{} {}",
                    p["Method"].as_str().unwrap(),
                    p["Path"].as_str().unwrap()
                ));
            }
            Some("SQS") => queues.push(p.clone()),
            other => panic!("an unexpected trigger {other:?}"),
        }
    }
    assert_eq!(
        routes,
        BTreeSet::from([
            "POST /restore".to_owned(),
            "GET /restore/{requestId}".to_owned(),
            "GET /drills/{name}".to_owned(),
            "GET /drills/{name}/report".to_owned(),
            "GET /drills/{name}/report.csv".to_owned(),
        ])
    );
    assert_eq!(queues.len(), 1);
    let source = &queues[0];
    assert_eq!(source["Queue"], get_att("WorkQueue", "Arn"));
    // The queue brake (README, Rolling back).
    assert_eq!(source["Enabled"], r#ref("WorkQueueEnabled"));
    assert_eq!(t["Parameters"]["WorkQueueEnabled"]["Default"], "true");
    assert!(
        string_set(&source["FunctionResponseTypes"]).contains("ReportBatchItemFailures"),
        "partial batch responses"
    );

    let queue = &resource(&t, "WorkQueue")["Properties"];
    let visibility = queue["VisibilityTimeout"]
        .as_u64()
        .expect("a visibility timeout");
    assert!(
        visibility >= 6 * timeout,
        "visibility timeout {visibility} s is at least 6 x the function timeout {timeout} s"
    );
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        get_att("WorkQueueDeadLetterQueue", "Arn")
    );
    assert!(
        queue["RedrivePolicy"]["maxReceiveCount"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );

    let on_failure = &function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"], "SQS");
    assert_eq!(
        on_failure["Destination"],
        get_att("AsyncFailureQueue", "Arn")
    );

    let log_group = &resource(&t, "FunctionLogGroup")["Properties"];
    assert!(log_group.get("RetentionInDays").is_some(), "log retention");
    assert_eq!(
        function["LoggingConfig"]["LogGroup"],
        r#ref("FunctionLogGroup")
    );
}

#[test]
fn the_drill_schedule_passes_the_execution_id_as_the_contract_shows() {
    let t = template();
    let schedule = resource(&t, "DrillSchedule");
    assert_eq!(schedule["Type"], "AWS::Scheduler::Schedule");
    assert_eq!(schedule["Condition"], "HasDrillCommand");
    assert_eq!(t["Parameters"]["DrillCommand"]["Default"], "");
    assert_eq!(
        t["Conditions"]["HasDrillCommand"],
        json!({"Fn::Not": [{"Fn::Equals": [r#ref("DrillCommand"), ""]}]})
    );
    let target = &schedule["Properties"]["Target"];
    assert_eq!(target["Arn"], get_att("RestoreFunction", "Arn"));
    assert_eq!(target["RoleArn"], get_att("DrillSchedulerRole", "Arn"));
    let input = target["Input"]["Fn::Sub"]
        .as_str()
        .expect("the input is an Fn::Sub of the command parameter");
    let command = json!({"groupId": "5e2211c17a3e5a48f5497de3", "clusterName": "orders", "drill": {"name": "orders-monthly"}});
    // A scheduled drill is a drill: a command without "drill" is refused by the parameter.
    let pattern = t["Parameters"]["DrillCommand"]["AllowedPattern"]
        .as_str()
        .expect("DrillCommand has an AllowedPattern");
    let pattern = regex::Regex::new(pattern).unwrap();
    assert!(pattern.is_match(&command.to_string()));
    assert!(pattern.is_match(""));
    assert!(
        !pattern.is_match(r#"{"groupId": "5e2211c17a3e5a48f5497de3", "clusterName": "orders"}"#)
    );
    let rendered = input.replace("${DrillCommand}", &command.to_string());
    assert!(
        !rendered.contains("${"),
        "only DrillCommand is substituted: {input}"
    );
    let event: Value = serde_json::from_str(&rendered).expect("the input is JSON");
    assert_eq!(
        event,
        json!({
            "schedule": {
                "executionId": "<aws.scheduler.execution-id>",
                "scheduledTime": "<aws.scheduler.scheduled-time>"
            },
            "command": command
        })
    );
}

/// The names in the first column of CONTRACT section 5.
fn contract_variables() -> BTreeSet<String> {
    let contract = repo_file("docs/CONTRACT.md");
    let section = contract
        .split("\n## ")
        .find(|s| s.starts_with("5. "))
        .expect("CONTRACT section 5");
    let mut names = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = line.split('|').nth(1).unwrap_or_default();
        for name in first_cell.split('`').skip(1).step_by(2) {
            names.insert(name.to_owned());
        }
    }
    names
}

#[test]
fn the_environment_is_the_contracts() {
    let t = template();
    let variables: BTreeSet<String> = resource(&t, "RestoreFunction")["Properties"]["Environment"]
        ["Variables"]
        .as_object()
        .expect("Environment.Variables")
        .keys()
        .cloned()
        .collect();
    let mut expected = contract_variables();
    assert!(expected.contains("ATLAS_SECRET_ID"), "{expected:?}");
    // Where the AWS clients connect: for local runs and tests, not for a deployment.
    expected.remove("AWS_ENDPOINT_URL");
    assert_eq!(variables, expected);
}

#[test]
fn the_alarms_watch_errors_dead_letters_and_the_outcomes_the_function_emits() {
    let t = template();
    let alarms: Vec<&Map<String, Value>> = of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(_, a)| a["Properties"].as_object().expect("alarm properties"))
        .collect();
    for alarm in &alarms {
        assert!(
            !listed(&alarm["AlarmActions"]).is_empty(),
            "every alarm notifies: {alarm:?}"
        );
    }
    let watches = |namespace: &str, metric: &str, dimension: (&str, &Value)| {
        alarms.iter().any(|a| {
            a["Namespace"] == namespace
                && a["MetricName"] == metric
                && listed(&a["Dimensions"])
                    .iter()
                    .any(|d| d["Name"] == dimension.0 && &d["Value"] == dimension.1)
        })
    };
    assert!(watches(
        "AWS/Lambda",
        "Errors",
        ("FunctionName", &r#ref("RestoreFunction"))
    ));
    for queue in ["WorkQueueDeadLetterQueue", "AsyncFailureQueue"] {
        assert!(
            watches(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                ("QueueName", &get_att(queue, "QueueName"))
            ),
            "{queue} depth"
        );
    }

    // Namespace, metric and dimension as the function writes them (Embedded Metric Format).
    let line: Value = serde_json::from_str(&metric_line(OutcomeKind::Unknown, Utc::now())).unwrap();
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], METRIC_NAMESPACE);
    let metric = directive["Metrics"][0]["Name"].as_str().unwrap();
    let dimension = directive["Dimensions"][0][0].as_str().unwrap();
    assert_eq!(line[dimension], "UNKNOWN");
    for outcome in [
        OutcomeKind::Unknown.as_str(),
        OutcomeKind::Failed.as_str(),
        OutcomeKind::Broken.as_str(),
        OutcomeKind::Stalled.as_str(),
    ] {
        assert!(
            watches(METRIC_NAMESPACE, metric, (dimension, &json!(outcome))),
            "an alarm on {outcome} outcomes"
        );
    }
}

#[test]
fn the_outputs_name_what_a_team_wires_up() {
    let t = template();
    let outputs: BTreeMap<&String, &Value> =
        t["Outputs"].as_object().expect("Outputs").iter().collect();
    for name in [
        "WebhookUrl",
        "OutcomeTopicArn",
        "IdempotencyTableName",
        "DrillTableName",
        "WorkQueueUrl",
    ] {
        assert!(outputs.contains_key(&name.to_owned()), "output {name}");
    }
    assert_eq!(
        outputs[&"OutcomeTopicArn".to_owned()]["Value"],
        r#ref("OutcomeTopic")
    );
    assert_eq!(
        outputs[&"IdempotencyTableName".to_owned()]["Value"],
        json!({"Fn::If": [
            "CreateIdempotencyTable",
            r#ref("IdempotencyTable"),
            r#ref("ExistingIdempotencyTableName")
        ]})
    );
    // start-message-move-task and the redrive of the on-failure queue take ARNs.
    for queue in ["WorkQueueDeadLetterQueue", "AsyncFailureQueue"] {
        assert_eq!(
            outputs[&format!("{queue}Arn")]["Value"],
            get_att(queue, "Arn"),
            "{queue}Arn"
        );
    }
    assert_eq!(
        outputs[&"WorkQueueUrl".to_owned()]["Value"],
        r#ref("WorkQueue")
    );
}

/// Where the function's configuration bounds a parameter, the template bounds it the same way,
/// so a stack cannot be deployed with a value the function refuses at start (or one that lets
/// a key's record expire while Lambda may still retry its event).
#[test]
fn the_parameters_keep_the_limits_the_function_checks() {
    let t = template();
    let ttl = &t["Parameters"]["IdempotencyTtlSeconds"];
    assert_eq!(
        ttl["MinValue"].as_u64(),
        Some(MIN_IDEMPOTENCY_TTL_SECONDS),
        "a key outlives Lambda's 6 hours of asynchronous retries"
    );
    assert!(ttl["Default"].as_u64().unwrap_or(0) >= MIN_IDEMPOTENCY_TTL_SECONDS);
    let interval = &t["Parameters"]["FollowIntervalSeconds"];
    assert_eq!(
        interval["MaxValue"].as_u64(),
        Some(MAX_FOLLOW_INTERVAL_SECONDS),
        "SQS delays a message by at most 900 s"
    );
    // Lambda's asynchronous retries stay inside the key's lifetime.
    let async_config = &resource(&t, "RestoreFunction")["Properties"]["EventInvokeConfig"];
    assert!(
        async_config["MaximumEventAgeInSeconds"]
            .as_u64()
            .is_some_and(|age| age <= MIN_IDEMPOTENCY_TTL_SECONDS)
    );
}

/// Operators reading an alarm are told to look the request up before they send anything again:
/// a redrive or a second invoke of a request that already reached Atlas is a second restore.
#[test]
fn alarms_that_suggest_sending_again_say_to_look_the_request_up_first() {
    let t = template();
    for (name, alarm) in of_type(&t, "AWS::CloudWatch::Alarm") {
        let text = alarm["Properties"]["AlarmDescription"]
            .as_str()
            .unwrap_or_default();
        let lower = text.to_lowercase();
        if lower.contains("redrive") || lower.contains("invok") || lower.contains("again") {
            let lookup = text
                .find("GET /restore/{requestId}")
                .unwrap_or_else(|| panic!("{name}: no status lookup in {text:?}"));
            for verb in ["redrive", "invoke again", "ask again"] {
                if let Some(at) = lower.find(verb) {
                    assert!(
                        lookup < at,
                        "{name}: the lookup comes before \"{verb}\": {text:?}"
                    );
                }
            }
        }
    }
}

/// The outcome topic feeds a chat channel that believes what it reads: only the function's
/// role may publish to it, whatever an identity policy elsewhere in the account allows.
#[test]
fn only_the_function_s_role_may_publish_outcomes() {
    let t = template();
    let role = get_att("RestoreFunctionRole", "Arn");
    let policies = of_type(&t, "AWS::SNS::TopicPolicy");
    let outcome: Vec<&Value> = policies
        .iter()
        .map(|(_, p)| &p["Properties"])
        .filter(|p| listed(&p["Topics"]).contains(&r#ref("OutcomeTopic")))
        .collect();
    assert_eq!(
        outcome.len(),
        1,
        "one policy replaces SNS's default one (which lets the whole account publish)"
    );
    assert_eq!(listed(&outcome[0]["Topics"]), vec![r#ref("OutcomeTopic")]);
    let document = &outcome[0]["PolicyDocument"];
    assert_eq!(document["Version"], "2012-10-17");
    let statements = listed(&document["Statement"]);
    assert_eq!(
        statements,
        vec![
            json!({
                "Sid": "OnlyTheRunnerPublishes",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "sns:Publish",
                "Resource": r#ref("OutcomeTopic"),
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": role}}
            }),
            json!({
                "Sid": "TheRunnerPublishes",
                "Effect": "Allow",
                "Principal": {"AWS": role},
                "Action": "sns:Publish",
                "Resource": r#ref("OutcomeTopic")
            }),
        ],
        "exactly these statements: a Deny for every other principal, an Allow for the role"
    );

    // No topic policy of the stack opens a topic to everyone.
    for (name, policy) in policies {
        for statement in listed(&policy["Properties"]["PolicyDocument"]["Statement"]) {
            if statement["Effect"] == "Allow" {
                let principal = &statement["Principal"];
                assert!(
                    principal != "*" && principal["AWS"] != "*",
                    "{name}: an Allow for every principal: {statement}"
                );
            }
        }
    }

    // And no identity policy of the stack lets anyone but the function publish there.
    for grant in iam_grants(&t) {
        if grant.actions().iter().any(|a| a.starts_with("sns:")) {
            assert_eq!(
                (grant.owner.as_str(), grant.sid.as_str()),
                ("RestoreFunctionRole", "PublishOutcomes"),
                "{grant:?}"
            );
        }
    }
}

/// Whoever may invoke the function may restore: the stack itself opens no other way in than
/// the HTTP API's two routes (whose signature the function checks), the work queue, and the
/// drill schedule's role. A Function URL, a resource-policy grant or another event source
/// would each be a new way to run a restore.
#[test]
fn nothing_but_the_webhook_the_queue_and_the_drill_role_may_invoke_the_function() {
    let t = template();
    for kind in [
        "AWS::Lambda::Permission",
        "AWS::Lambda::Url",
        "AWS::Lambda::EventSourceMapping",
        "AWS::Serverless::Api",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGatewayV2::Api",
        "AWS::Events::Rule",
    ] {
        assert!(
            of_type(&t, kind).is_empty(),
            "{kind}: a way to invoke the function this test does not know"
        );
    }
    let function = &resource(&t, "RestoreFunction")["Properties"];
    assert!(
        function.get("FunctionUrlConfig").is_none(),
        "no Function URL (it would take unauthenticated calls besides the API's)"
    );
    assert!(
        function.get("AutoPublishAlias").is_none(),
        "no alias whose permissions this test would not see"
    );
    // The events: the HTTP API's two routes and the work queue (checked one by one in
    // the_function_and_its_triggers_follow_the_issue); nothing else.
    let kinds: BTreeSet<&str> = function["Events"]
        .as_object()
        .expect("Events")
        .values()
        .filter_map(|e| e["Type"].as_str())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["HttpApi", "SQS"]));
    // The only identity grant of lambda:InvokeFunction: the drill schedule's role, on this
    // function, when a drill is configured.
    let invokers: Vec<(String, String)> = iam_grants(&t)
        .into_iter()
        .filter(|g| g.actions().iter().any(|a| a.starts_with("lambda:")))
        .map(|g| (g.owner, g.sid))
        .collect();
    assert_eq!(
        invokers,
        vec![(
            "DrillSchedulerRole".to_owned(),
            "InvokeTheRunner".to_owned()
        )]
    );
}

//! The Atlas client's Cloud Backup (v2) calls over real HTTP against the Atlas double: the
//! versioned media type, one job per answer, and every answer class, with both ways of
//! authenticating.
mod support;

use std::time::Duration;

use atlas_restore_runner::atlas::{AtlasClient, AtlasClientConfig, AtlasCredentials, CreateAnswer};
use atlas_restore_runner::command::{ClusterName, ObjectId, SourceCluster};
use atlas_restore_runner::redacted::Secret;
use chrono::Utc;
use serde_json::{Value, json};
use support::atlas_double::{AtlasDouble, CloudJobState, Fault, RecordedAuth, Route};
use tokio::time::Instant;

const GROUP: &str = "5e2211c17a3e5a48f5497de3";
const SNAPSHOT: &str = "5f1c6b1e2a9b4f3d8c7e6a5b";
const NEWER: &str = "5f1c6b1e2a9b4f3d8c7e6a5c";
const V2: &str = "application/vnd.atlas.2023-01-01+json";

async fn double() -> AtlasDouble {
    let atlas = AtlasDouble::start().await;
    atlas.add_api_key("pub", "priv-SECRET");
    atlas.add_service_account("mdb_sa_id_cloud", "mdb_sa_sk_SECRET");
    atlas.add_cluster(GROUP, "orders", "6a0000000000000000000001", 0);
    atlas.add_cluster(GROUP, "orders-drill", "6a0000000000000000000002", 0);
    atlas.add_cloud_snapshot(
        GROUP,
        "orders",
        SNAPSHOT,
        Utc::now() - chrono::Duration::hours(6),
        "completed",
    );
    atlas.add_cloud_snapshot(
        GROUP,
        "orders",
        NEWER,
        Utc::now() - chrono::Duration::hours(1),
        "completed",
    );
    atlas.add_cloud_snapshot(
        GROUP,
        "orders",
        "5f1c6b1e2a9b4f3d8c7e6a5d",
        Utc::now(),
        "inProgress",
    );
    atlas
}

fn clients(atlas: &AtlasDouble) -> Vec<(&'static str, AtlasClient)> {
    let config = || {
        let mut config = AtlasClientConfig::new(atlas.base_url().parse().unwrap());
        config.backoff_base = Duration::from_millis(20);
        config.min_attempt_time = Duration::from_millis(100);
        config.request_timeout = Duration::from_secs(3);
        config
    };
    vec![
        (
            "digest",
            AtlasClient::new(
                config(),
                AtlasCredentials::ApiKey {
                    public_key: "pub".into(),
                    private_key: Secret::new("priv-SECRET"),
                },
            )
            .unwrap(),
        ),
        (
            "service account",
            AtlasClient::new(
                config(),
                AtlasCredentials::ServiceAccount {
                    client_id: "mdb_sa_id_cloud".into(),
                    client_secret: Secret::new("mdb_sa_sk_SECRET"),
                },
            )
            .unwrap(),
        ),
    ]
}

fn source() -> SourceCluster {
    SourceCluster {
        group_id: ObjectId::parse(GROUP).unwrap(),
        cluster_name: ClusterName::parse("orders").unwrap(),
    }
}

fn automated() -> Value {
    json!({"deliveryType": "automated", "snapshotId": SNAPSHOT, "targetGroupId": GROUP, "targetClusterName": "orders-drill"})
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn posts(atlas: &AtlasDouble) -> usize {
    atlas
        .requests_on(Route::CreateCloudRestoreJob)
        .iter()
        .filter(|r| {
            matches!(
                &r.auth,
                RecordedAuth::Digest {
                    valid: true,
                    stale: false,
                    ..
                } | RecordedAuth::Bearer { valid: true }
            )
        })
        .count()
}

#[tokio::test]
async fn each_delivery_type_creates_one_job_with_the_versioned_media_type() {
    let bodies = [
        automated(),
        json!({"deliveryType": "download", "snapshotId": SNAPSHOT}),
        json!({"deliveryType": "pointInTime", "pointInTimeUTCSeconds": Utc::now().timestamp() - 1800, "targetGroupId": GROUP, "targetClusterName": "orders-drill"}),
    ];
    for (index, body) in bodies.iter().enumerate() {
        let atlas = double().await;
        for (auth, client) in clients(&atlas) {
            let answer = client
                .create_cloud_restore_job(&source(), body, deadline())
                .await;
            let CreateAnswer::Created {
                http_status: 200,
                jobs,
            } = &answer
            else {
                panic!("{auth} {body}: {answer:?}")
            };
            assert_eq!(jobs.len(), 1, "one job, not a page");
            assert_eq!(jobs[0].other["deliveryType"], body["deliveryType"]);
            // The target is busy while its restore runs: free it for the next client.
            atlas.set_cloud_job_state(
                &jobs[0].id,
                CloudJobState {
                    finished_at: Some(Utc::now()),
                    ..CloudJobState::default()
                },
            );
            let _ = index;
        }
        assert_eq!(atlas.created_cloud_jobs(), 2);
        assert_eq!(posts(&atlas), 2);
        for request in atlas.requests_on(Route::CreateCloudRestoreJob) {
            let header = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(header("accept").as_deref(), Some(V2));
            assert_eq!(header("content-type").as_deref(), Some(V2));
            assert!(request.path.starts_with(&format!(
                "/api/atlas/v2/groups/{GROUP}/clusters/orders/backup/restoreJobs"
            )));
        }
    }
}

/// A fault, the answer class it must produce, and how many jobs it leaves.
type Case = (Fault, fn(&CreateAnswer) -> bool, usize);

#[tokio::test]
async fn cloud_answer_classes_are_those_of_the_contract() {
    let cases: Vec<Case> = vec![
        (
            Fault::Status {
                status: 400,
                error_code: "INVALID_ATTRIBUTE".into(),
                retry_after: None,
            },
            |a| {
                matches!(
                    a,
                    CreateAnswer::Refused {
                        http_status: 400,
                        ..
                    }
                )
            },
            0,
        ),
        (
            Fault::Status {
                status: 404,
                error_code: "SNAPSHOT_NOT_FOUND".into(),
                retry_after: None,
            },
            |a| {
                matches!(
                    a,
                    CreateAnswer::Refused {
                        http_status: 404,
                        ..
                    }
                )
            },
            0,
        ),
        (
            Fault::Status {
                status: 500,
                error_code: "UNEXPECTED_ERROR".into(),
                retry_after: None,
            },
            |a| {
                matches!(
                    a,
                    CreateAnswer::Ambiguous {
                        http_status: Some(500),
                        ..
                    }
                )
            },
            0,
        ),
        (
            Fault::Status {
                status: 503,
                error_code: "SERVICE_UNAVAILABLE".into(),
                retry_after: Some(3),
            },
            |a| {
                matches!(
                    a,
                    CreateAnswer::Unavailable {
                        retry_after: Some(_),
                        ..
                    }
                )
            },
            0,
        ),
        (
            Fault::NonJson {
                status: 200,
                body: "OK".into(),
                process: true,
            },
            |a| {
                matches!(
                    a,
                    CreateAnswer::Ambiguous {
                        http_status: Some(200),
                        ..
                    }
                )
            },
            1,
        ),
        (
            Fault::CreateThenDrop,
            |a| {
                matches!(
                    a,
                    CreateAnswer::Ambiguous {
                        http_status: None,
                        ..
                    }
                )
            },
            1,
        ),
        (
            Fault::ProcessThenDelay(Duration::from_secs(30)),
            |a| {
                matches!(
                    a,
                    CreateAnswer::Ambiguous {
                        http_status: None,
                        ..
                    }
                )
            },
            1,
        ),
    ];
    for (fault, expected, jobs) in cases {
        for auth in [0, 1] {
            let atlas = double().await;
            let (name, client) = clients(&atlas).swap_remove(auth);
            atlas.push_fault(Route::CreateCloudRestoreJob, fault.clone());
            let answer = client
                .create_cloud_restore_job(&source(), &automated(), deadline())
                .await;
            assert!(expected(&answer), "{name} {fault:?}: {answer:?}");
            assert_eq!(atlas.created_cloud_jobs(), jobs, "{name} {fault:?}");
            assert_eq!(posts(&atlas), 1, "{name} {fault:?}: sent once");
        }
    }
}

#[tokio::test]
async fn a_busy_target_is_refused_409_and_rate_limits_are_waited_out() {
    let atlas = double().await;
    let (_, client) = clients(&atlas).swap_remove(0);
    assert!(matches!(
        client
            .create_cloud_restore_job(&source(), &automated(), deadline())
            .await,
        CreateAnswer::Created { .. }
    ));
    match client
        .create_cloud_restore_job(&source(), &automated(), deadline())
        .await
    {
        CreateAnswer::Refused {
            http_status: 409,
            error,
        } => assert_eq!(
            error.error_code.as_deref(),
            Some("ATLAS_CLUSTER_RESTORE_IN_PROGRESS")
        ),
        other => panic!("a second restore into a busy target: {other:?}"),
    }
    let atlas = double().await;
    let (_, client) = clients(&atlas).swap_remove(0);
    atlas.push_fault(
        Route::CreateCloudRestoreJob,
        Fault::Status {
            status: 429,
            error_code: "RATE_LIMITED".into(),
            retry_after: None,
        },
    );
    assert!(matches!(
        client
            .create_cloud_restore_job(&source(), &automated(), deadline())
            .await,
        CreateAnswer::Created { .. }
    ));
    assert_eq!(posts(&atlas), 2);
    assert_eq!(atlas.created_cloud_jobs(), 1);
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_for_both_methods_and_create_nothing() {
    let atlas = double().await;
    let config = || AtlasClientConfig::new(atlas.base_url().parse().unwrap());
    let wrong_key = AtlasClient::new(
        config(),
        AtlasCredentials::ApiKey {
            public_key: "pub".into(),
            private_key: Secret::new("wrong"),
        },
    )
    .unwrap();
    let wrong_secret = AtlasClient::new(
        config(),
        AtlasCredentials::ServiceAccount {
            client_id: "mdb_sa_id_cloud".into(),
            client_secret: Secret::new("wrong"),
        },
    )
    .unwrap();
    for client in [wrong_key, wrong_secret] {
        let answer = client
            .create_cloud_restore_job(&source(), &automated(), deadline())
            .await;
        assert!(
            matches!(
                answer,
                CreateAnswer::Unauthorized {
                    http_status: 401,
                    ..
                }
            ),
            "{answer:?}"
        );
    }
    assert_eq!(atlas.created_cloud_jobs(), 0);
    assert_eq!(posts(&atlas), 0);
}

#[tokio::test]
async fn cloud_jobs_and_snapshots_are_listed() {
    let atlas = double().await;
    let (_, client) = clients(&atlas).swap_remove(0);
    let CreateAnswer::Created { jobs, .. } = client
        .create_cloud_restore_job(&source(), &automated(), deadline())
        .await
    else {
        panic!()
    };
    let listed = client
        .list_cloud_restore_jobs(&source(), deadline())
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        vec![jobs[0].id.clone()]
    );
    let one = client
        .get_cloud_restore_job(&source(), &jobs[0].id, deadline())
        .await
        .unwrap();
    assert_eq!(one.other["targetClusterName"], "orders-drill");
    let snapshots = client
        .list_cloud_snapshots(&source(), deadline())
        .await
        .unwrap();
    let mut completed: Vec<&str> = snapshots
        .iter()
        .filter(|s| s.status.as_deref() == Some("completed"))
        .map(|s| s.id.as_str())
        .collect();
    completed.sort();
    assert_eq!(completed, vec![SNAPSHOT, NEWER]);
    assert_eq!(
        snapshots.len(),
        3,
        "every status is listed; the runner picks the completed ones"
    );
}

/// CONTRACT section 4, "Deadlines": a cloud create ends by its deadline as a whole chain, for
/// both ways of authenticating; cut after its POST went out it is ambiguous, cut while getting
/// the service account's token it was not sent.
#[tokio::test]
async fn a_cloud_create_ends_by_its_deadline_with_the_class_of_where_it_was_cut() {
    let slack = Duration::from_millis(400);
    for auth in [0, 1] {
        let atlas = double().await;
        let (name, client) = clients(&atlas).swap_remove(auth);
        atlas.push_fault(
            Route::Token,
            Fault::DelayThenProcess(Duration::from_secs(2)),
        );
        atlas.push_fault(
            Route::CreateCloudRestoreJob,
            Fault::DelayThenProcess(Duration::from_secs(60)),
        );
        let budget = Duration::from_secs(3);
        let started = std::time::Instant::now();
        let answer = client
            .create_cloud_restore_job(&source(), &automated(), Instant::now() + budget)
            .await;
        let took = started.elapsed();
        assert!(took <= budget + slack, "{name}: took {took:?}");
        assert!(
            matches!(
                answer,
                CreateAnswer::Ambiguous {
                    http_status: None,
                    ..
                }
            ),
            "{name}: {answer:?}"
        );
        assert_eq!(posts(&atlas), 1, "{name}: sent once");
        assert_eq!(atlas.created_cloud_jobs(), 0, "{name}");
    }

    let atlas = double().await;
    let (_, client) = clients(&atlas).swap_remove(1);
    atlas.push_fault(
        Route::Token,
        Fault::DelayThenProcess(Duration::from_secs(60)),
    );
    let budget = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let answer = client
        .create_cloud_restore_job(&source(), &automated(), Instant::now() + budget)
        .await;
    assert!(
        started.elapsed() <= budget + slack,
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&answer, CreateAnswer::NotSent { reason } if reason.contains("token")),
        "{answer:?}"
    );
    assert!(atlas.requests_on(Route::CreateCloudRestoreJob).is_empty());
}

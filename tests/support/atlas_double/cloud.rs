//! Cloud Backup (v2) routes under `/api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup`:
//! restore jobs (create, list, get) and snapshots (list), with Atlas's versioned media type.
//!
//! The rules, in the order they are checked on create:
//! 1. `Accept` must list `application/vnd.atlas.2023-01-01+json` (on every v2 route), else 406.
//! 2. The project, then the cluster, must exist (404, as on the legacy routes).
//! 3. `Content-Type` is the versioned media type or `application/json`, else 415.
//! 4. The body is a `DiskBackupSnapshotRestoreJob`:
//!    - `automated`: `snapshotId`, `targetGroupId`, `targetClusterName`;
//!    - `download`: `snapshotId`, no target;
//!    - `pointInTime`: the targets and either `pointInTimeUTCSeconds` or `oplogTs` + `oplogInc`
//!      (epoch seconds, int32, >= 1199145600, not in the future), no `snapshotId`.
//!
//!    The point-in-time fields are refused on `automated` and `download`. Unknown fields are
//!    ignored.
//! 5. The snapshot must be one of this cluster's cloud snapshots (404) and `completed` (409). A
//!    point-in-time restore starts from the newest completed snapshot taken at or before the
//!    point (404 when there is none); its time becomes the job's `timestamp`.
//! 6. The target project and cluster must exist (404).
//! 7. The target must have no cloud restore job in progress, i.e. one without `finishedAt` and not
//!    `failed`, `cancelled` or `expired` (409).
//!
//! A create answers ONE job (not a page), for sharded clusters too. The job has no creation time:
//! Atlas's v1.0 cloud-backup pages listed `createdAt`, but it is not in the v2 schema and Atlas
//! does not send it (MongoDB's CloudFormation resource dropped it for that reason), so the double
//! keeps it internally ([`super::AtlasDouble::cloud_job_created_at`]); the job's id, an ObjectId,
//! carries it to the second, as Atlas's ids do. Like Atlas's answers, the
//! job's `links` also carry the `http://mms.mongodb.com/{snapshot,cluster,group}` relations.
//!
//! Error codes. From Atlas's error-code reference: `INVALID_ATTRIBUTE`, `MISSING_ATTRIBUTE`,
//! `MISSING_ONE_OF_ATTRIBUTES`, `INVALID_ENUM_VALUE`, `INVALID_PIT_RESTORE_TIME`, `MALFORMED_JSON`,
//! `INVALID_JSON`, `INVALID_QUERY_PARAMETER`, `MISSING_QUERY_PARAMETER`,
//! `MUTUALLY_EXCLUSIVE_QUERY_PARAMETERS`, `GROUP_NOT_FOUND`, `CLUSTER_NOT_FOUND`,
//! `SNAPSHOT_NOT_FOUND`, `UNABLE_T0_FIND_SNAPSHOT_PRIOR_TO_PIT_RESTORE_OPTIME` (sic: a zero),
//! `RESTORE_JOB_NOT_FOUND`, `CANNOT_START_RESTORE_JOB_FOR_INCOMPLETE_CLUSTER_SNAPSHOT` (409) and
//! `ATLAS_CLUSTER_RESTORE_IN_PROGRESS` (409, "Cluster restore already in progress.").
//! `INVALID_VERSION_DATE` is listed there as a 400, but clients report 406 "Invalid accept header
//! or version date." for a missing or wrong versioned `Accept`, which is what the double answers.
//! Invented here: `UNSUPPORTED_MEDIA_TYPE` (415) for a body that is neither JSON media type.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use hyper::HeaderMap;
use serde_json::{Map, Value, json};

use super::api::{self, Params, Query, present, rfc3339};
use super::{CloudJob, CloudJobState, CloudSnapshot, Cluster, Reply, ReplyBody, State, object_id};

/// The media type of the `2023-01-01` resource version, the only one these routes have.
pub(super) const VERSIONED_MEDIA_TYPE: &str = "application/vnd.atlas.2023-01-01+json";
/// `DiskBackupReplicaSet.status`.
pub(super) const SNAPSHOT_STATUSES: [&str; 4] = ["queued", "inProgress", "completed", "failed"];

const V2: &str = "/api/atlas/v2";
/// Minimum of `pointInTimeUTCSeconds` and `oplogTs` in the OpenAPI definition (2008-01-01).
const MIN_EPOCH_SECONDS: i64 = 1_199_145_600;
/// `expiresAt` of a job, after its creation.
const JOB_LIFETIME_HOURS: i64 = 4;
/// `expiresAt` of a snapshot, after it was taken.
const SNAPSHOT_RETENTION_DAYS: i64 = 7;
const MONGOD_VERSION: &str = "8.0.4";

// ---------------------------------------------------------------------------------------------
// Media types and errors.

/// The media type of a header value, without parameters, in lower case.
fn media_type(value: &str) -> String {
    let essence = value.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

fn require_version(headers: &HeaderMap) -> Result<(), Reply> {
    let accepted = headers
        .get_all("accept")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| media_type(range) == VERSIONED_MEDIA_TYPE);
    if accepted {
        return Ok(());
    }
    Err(Reply::api_error(
        406,
        "INVALID_VERSION_DATE",
        "Invalid accept header or version date.",
    ))
}

fn require_json_body(headers: &HeaderMap) -> Result<(), Reply> {
    let sent = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .map(media_type);
    match sent.as_deref() {
        Some(VERSIONED_MEDIA_TYPE | "application/json") => Ok(()),
        other => Err(Reply::api_error(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            format!(
                "Content-Type {} is not supported; send {VERSIONED_MEDIA_TYPE}.",
                other.unwrap_or("(none)")
            ),
        )),
    }
}

/// A 400 `ApiError` whose `badRequestDetail` names the field.
fn bad_request(code: &str, field: &str, detail: String) -> Reply {
    let mut reply = Reply::api_error(400, code, detail.clone());
    if let ReplyBody::Json(body) = &mut reply.body {
        body["badRequestDetail"] = json!({"fields": [{"field": field, "description": detail}]});
    }
    reply
}

fn invalid(field: &str) -> Reply {
    bad_request(
        "INVALID_ATTRIBUTE",
        field,
        format!("Invalid attribute {field} specified."),
    )
}

fn missing(field: &str) -> Reply {
    bad_request(
        "MISSING_ATTRIBUTE",
        field,
        format!("The required attribute {field} was not specified."),
    )
}

fn restore_job_not_found(job_id: &str, cluster: &Cluster) -> Reply {
    Reply::api_error(
        404,
        "RESTORE_JOB_NOT_FOUND",
        format!(
            "No restore job with ID {job_id} exists for cluster {}.",
            cluster.name
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// The create request.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Automated,
    Download,
    PointInTime,
}

impl Delivery {
    fn name(self) -> &'static str {
        match self {
            Delivery::Automated => "automated",
            Delivery::Download => "download",
            Delivery::PointInTime => "pointInTime",
        }
    }
}

enum Point {
    Seconds(i64),
    Oplog { ts: i64, inc: i64 },
}

impl Point {
    fn seconds(&self) -> i64 {
        match self {
            Point::Seconds(seconds) => *seconds,
            Point::Oplog { ts, .. } => *ts,
        }
    }
}

struct Restore {
    delivery: Delivery,
    snapshot_id: Option<String>,
    target: Option<(String, String)>,
    point: Option<Point>,
}

fn is_cluster_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn text_field<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    valid: fn(&str) -> bool,
) -> Result<Option<&'a str>, Reply> {
    match present(body, key) {
        None => Ok(None),
        Some(Value::String(text)) if valid(text) => Ok(Some(text)),
        Some(_) => Err(invalid(key)),
    }
}

/// An int32 field (the OpenAPI `format`), at least `min`.
fn int_field(body: &Map<String, Value>, key: &str, min: i64) -> Result<Option<i64>, Reply> {
    match present(body, key) {
        None => Ok(None),
        Some(value) => value
            .as_i64()
            .filter(|n| (min..=i64::from(i32::MAX)).contains(n))
            .map(Some)
            .ok_or_else(|| invalid(key)),
    }
}

fn parse_restore(body: &Map<String, Value>) -> Result<Restore, Reply> {
    let delivery = match present(body, "deliveryType") {
        None => return Err(missing("deliveryType")),
        Some(Value::String(name)) => match name.as_str() {
            "automated" => Delivery::Automated,
            "download" => Delivery::Download,
            "pointInTime" => Delivery::PointInTime,
            _ => {
                return Err(bad_request(
                    "INVALID_ENUM_VALUE",
                    "deliveryType",
                    format!("An invalid enumeration value {name} was specified."),
                ));
            }
        },
        Some(_) => return Err(invalid("deliveryType")),
    };
    let snapshot_id = text_field(body, "snapshotId", api::is_hex24)?;
    let target_group = text_field(body, "targetGroupId", api::is_hex24)?;
    let target_name = text_field(body, "targetClusterName", is_cluster_name)?;
    let seconds = int_field(body, "pointInTimeUTCSeconds", MIN_EPOCH_SECONDS)?;
    let oplog_ts = int_field(body, "oplogTs", MIN_EPOCH_SECONDS)?;
    let oplog_inc = int_field(body, "oplogInc", 1)?;

    let target = |group: Option<&str>, name: Option<&str>| {
        let group = group.ok_or_else(|| missing("targetGroupId"))?;
        let name = name.ok_or_else(|| missing("targetClusterName"))?;
        Ok::<_, Reply>(Some((group.to_owned(), name.to_owned())))
    };
    if delivery != Delivery::PointInTime {
        let timed = [
            ("pointInTimeUTCSeconds", seconds),
            ("oplogTs", oplog_ts),
            ("oplogInc", oplog_inc),
        ];
        if let Some((key, _)) = timed.iter().find(|(_, value)| value.is_some()) {
            return Err(invalid(key));
        }
        let snapshot_id = snapshot_id.ok_or_else(|| missing("snapshotId"))?;
        let target = if delivery == Delivery::Automated {
            target(target_group, target_name)?
        } else {
            if target_group.is_some() {
                return Err(invalid("targetGroupId"));
            }
            if target_name.is_some() {
                return Err(invalid("targetClusterName"));
            }
            None
        };
        return Ok(Restore {
            delivery,
            snapshot_id: Some(snapshot_id.to_owned()),
            target,
            point: None,
        });
    }

    if snapshot_id.is_some() {
        return Err(invalid("snapshotId"));
    }
    let target = target(target_group, target_name)?;
    let point = match (seconds, oplog_ts, oplog_inc) {
        (Some(seconds), None, None) => Point::Seconds(seconds),
        (None, Some(ts), Some(inc)) => Point::Oplog { ts, inc },
        (None, Some(_), None) => return Err(missing("oplogInc")),
        (None, None, Some(_)) => return Err(missing("oplogTs")),
        (None, None, None) => {
            return Err(bad_request(
                "MISSING_ONE_OF_ATTRIBUTES",
                "pointInTimeUTCSeconds",
                "Either the pointInTimeUTCSeconds attribute or the oplogTs attribute must be specified."
                    .to_owned(),
            ));
        }
        (Some(_), _, _) => {
            return Err(bad_request(
                "INVALID_ATTRIBUTE",
                "pointInTimeUTCSeconds",
                "Specify either pointInTimeUTCSeconds or oplogTs with oplogInc, not both."
                    .to_owned(),
            ));
        }
    };
    if point.seconds() > Utc::now().timestamp() {
        let field = match point {
            Point::Seconds(_) => "pointInTimeUTCSeconds",
            Point::Oplog { .. } => "oplogTs",
        };
        return Err(bad_request(
            "INVALID_PIT_RESTORE_TIME",
            field,
            "Please provide a valid UTC time or an operation time (ts).".to_owned(),
        ));
    }
    Ok(Restore {
        delivery,
        snapshot_id: None,
        target,
        point: Some(point),
    })
}

// ---------------------------------------------------------------------------------------------
// Routes.

fn same_cluster(cluster: &Cluster, group_id: &str, cluster_name: &str) -> bool {
    cluster.group_id == group_id && cluster.name == cluster_name
}

fn cluster_path(cluster: &Cluster) -> String {
    format!("{V2}/groups/{}/clusters/{}", cluster.group_id, cluster.name)
}

/// The snapshot a restore starts from: the named one, or for a point in time the newest completed
/// snapshot taken at or before it.
fn source_snapshot<'a>(
    state: &'a State,
    cluster: &Cluster,
    restore: &Restore,
) -> Result<&'a CloudSnapshot, Reply> {
    let mut own = state
        .cloud_snapshots
        .iter()
        .filter(|s| same_cluster(cluster, &s.group_id, &s.cluster_name));
    if let Some(point) = &restore.point {
        let seconds = point.seconds();
        return own
            .filter(|s| s.status == "completed" && s.created_at.timestamp() <= seconds)
            .max_by_key(|s| s.created_at)
            .ok_or_else(|| {
                Reply::api_error(
                    404,
                    "UNABLE_T0_FIND_SNAPSHOT_PRIOR_TO_PIT_RESTORE_OPTIME",
                    "Unable to find snapshot prior to pit restore optime.",
                )
            });
    }
    let id = restore.snapshot_id.as_deref().unwrap_or_default();
    let Some(snapshot) = own.find(|s| s.id == id) else {
        return Err(Reply::api_error(
            404,
            "SNAPSHOT_NOT_FOUND",
            format!(
                "No snapshot with ID {id} exists for cluster {}.",
                cluster.name
            ),
        ));
    };
    if snapshot.status != "completed" {
        return Err(Reply::api_error(
            409,
            "CANNOT_START_RESTORE_JOB_FOR_INCOMPLETE_CLUSTER_SNAPSHOT",
            format!(
                "Cannot start restore job for incomplete cluster snapshot {id} ({}).",
                snapshot.status
            ),
        ));
    }
    Ok(snapshot)
}

fn flag(job: &Value, key: &str) -> bool {
    job[key].as_bool().unwrap_or(false)
}

/// A job still running: not finished, failed, cancelled or expired.
fn in_progress(job: &Value) -> bool {
    job.get("finishedAt").is_none_or(Value::is_null)
        && !flag(job, "failed")
        && !flag(job, "cancelled")
        && !flag(job, "expired")
}

fn check_target(state: &State, target: &(String, String)) -> Result<(), Reply> {
    let (group_id, name) = target;
    if !state.groups.contains(group_id) {
        return Err(api::group_not_found(group_id));
    }
    if state.cluster(group_id, name).is_none() {
        return Err(api::cluster_not_found(group_id, name));
    }
    let busy = state
        .cloud_jobs
        .iter()
        .any(|job| job.target.as_ref() == Some(target) && in_progress(&job.value));
    if busy {
        return Err(Reply::api_error(
            409,
            "ATLAS_CLUSTER_RESTORE_IN_PROGRESS",
            "Cluster restore already in progress.",
        ));
    }
    Ok(())
}

/// Shard and config server replica set names, as in a download's `components`.
fn replica_set_names(cluster: &Cluster) -> Vec<String> {
    let prefix: String = cluster.id.chars().take(6).collect();
    let prefix = format!("atlas-{}", prefix.to_ascii_lowercase());
    let shards = (0..cluster.shards).map(|i| format!("{prefix}-shard-{i}"));
    shards
        .chain(std::iter::once(format!("{prefix}-config-0")))
        .collect()
}

pub(super) fn create_restore_job(
    state: &mut State,
    params: &Params,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reply, Reply> {
    require_version(headers)?;
    api::find_cluster(state, &params.group_id, &params.cluster_name)?;
    require_json_body(headers)?;
    create_restore_job_at(state, params, body, Utc::now())
}

/// Creates the job of a cloud restore as Atlas does, as of `now` (the media types checked).
pub(super) fn create_restore_job_at(
    state: &mut State,
    params: &Params,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Reply, Reply> {
    let cluster = api::find_cluster(state, &params.group_id, &params.cluster_name)?;
    let request = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(request)) => request,
        Ok(_) => {
            return Err(Reply::api_error(
                400,
                "INVALID_JSON",
                "Received JSON does not match expected format.",
            ));
        }
        Err(_) => {
            return Err(Reply::api_error(
                400,
                "MALFORMED_JSON",
                "Received JSON is malformed.",
            ));
        }
    };
    let restore = parse_restore(&request)?;
    let snapshot = source_snapshot(state, &cluster, &restore)?;
    let (snapshot_id, taken) = (snapshot.id.clone(), snapshot.created_at);
    if let Some(target) = &restore.target {
        check_target(state, target)?;
    }

    let id = object_id(now);
    let base = &state.base_url;
    let path = cluster_path(&cluster);
    let link = |href: String, rel: &str| json!({"href": format!("{base}{href}"), "rel": rel});
    let mut links = vec![link(format!("{path}/backup/restoreJobs/{id}"), "self")];
    if restore.snapshot_id.is_some() {
        links.push(link(
            format!("{path}/backup/snapshots/{snapshot_id}"),
            "http://mms.mongodb.com/snapshot",
        ));
    }
    links.push(link(path.clone(), "http://mms.mongodb.com/cluster"));
    links.push(link(
        format!("{V2}/groups/{}", cluster.group_id),
        "http://mms.mongodb.com/group",
    ));
    let mut job = json!({
        "id": id,
        "deliveryType": restore.delivery.name(),
        "cancelled": false,
        "failed": false,
        "expired": false,
        "expiresAt": rfc3339(now + ChronoDuration::hours(JOB_LIFETIME_HOURS)),
        "timestamp": rfc3339(taken),
        "links": links,
    });
    if restore.snapshot_id.is_some() {
        job["snapshotId"] = json!(snapshot_id);
    }
    if let Some((group_id, name)) = &restore.target {
        job["targetGroupId"] = json!(group_id);
        job["targetClusterName"] = json!(name);
    }
    match restore.point {
        Some(Point::Seconds(seconds)) => job["pointInTimeUTCSeconds"] = json!(seconds),
        Some(Point::Oplog { ts, inc }) => {
            job["oplogTs"] = json!(ts);
            job["oplogInc"] = json!(inc);
        }
        None => {}
    }
    if restore.delivery == Delivery::Download {
        // Atlas: "If empty, Atlas is processing the restore job."
        job["deliveryUrl"] = json!([]);
        if cluster.shards > 0 {
            let components: Vec<Value> = replica_set_names(&cluster)
                .into_iter()
                .map(|name| json!({"replicaSetName": name}))
                .collect();
            job["components"] = json!(components);
        }
    }
    state.cloud_jobs.push(CloudJob {
        group_id: cluster.group_id.clone(),
        cluster_name: cluster.name.clone(),
        value: job.clone(),
        request_body: body.to_vec(),
        created_at: now,
        target: restore.target,
    });
    Ok(Reply::json(200, job).versioned())
}

pub(super) fn list_restore_jobs(
    state: &State,
    params: &Params,
    headers: &HeaderMap,
    query: &Query,
) -> Result<Reply, Reply> {
    require_version(headers)?;
    let cluster = api::find_cluster(state, &params.group_id, &params.cluster_name)?;
    let paging = query.paging()?;
    let items = state
        .cloud_jobs
        .iter()
        .rev()
        .filter(|job| same_cluster(&cluster, &job.group_id, &job.cluster_name))
        .map(|job| job.value.clone())
        .collect();
    let path = format!("{}/backup/restoreJobs", cluster_path(&cluster));
    let page = api::page(&state.base_url, &path, &paging, items);
    Ok(Reply::json(200, page).versioned())
}

pub(super) fn get_restore_job(
    state: &State,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Reply, Reply> {
    require_version(headers)?;
    let cluster = api::find_cluster(state, &params.group_id, &params.cluster_name)?;
    state
        .cloud_jobs
        .iter()
        .find(|job| {
            same_cluster(&cluster, &job.group_id, &job.cluster_name)
                && job.value["id"] == params.job_id.as_str()
        })
        .map(|job| Reply::json(200, job.value.clone()).versioned())
        .ok_or_else(|| restore_job_not_found(&params.job_id, &cluster))
}

fn query_int(query: &Query, name: &str) -> Result<Option<i64>, Reply> {
    match query.get(name) {
        None => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .map(Some)
            .map_err(|_| api::invalid_query(name)),
    }
}

/// The point in time named by the snapshot list's query, in epoch seconds.
fn snapshot_point(query: &Query) -> Result<Option<i64>, Reply> {
    let seconds = query_int(query, "pointInTimeUtcSeconds")?;
    let oplog_ts = query_int(query, "oplogTs")?;
    let oplog_inc = query_int(query, "oplogInc")?;
    if seconds.is_some() && (oplog_ts.is_some() || oplog_inc.is_some()) {
        return Err(Reply::api_error(
            400,
            "MUTUALLY_EXCLUSIVE_QUERY_PARAMETERS",
            "Either the pointInTimeUtcSeconds query parameter or the oplogTs query parameter but not both should be specified.",
        ));
    }
    let missing_query = |name: &str| {
        Reply::api_error(
            400,
            "MISSING_QUERY_PARAMETER",
            format!("The required query parameter {name} was not specified."),
        )
    };
    match (oplog_ts, oplog_inc) {
        (Some(_), None) => Err(missing_query("oplogInc")),
        (None, Some(_)) => Err(missing_query("oplogTs")),
        _ => Ok(seconds.or(oplog_ts)),
    }
}

fn snapshot_json(base_url: &str, path: &str, cluster: &Cluster, snapshot: &CloudSnapshot) -> Value {
    let mut value = json!({
        "id": snapshot.id,
        "createdAt": rfc3339(snapshot.created_at),
        "expiresAt": rfc3339(snapshot.created_at + ChronoDuration::days(SNAPSHOT_RETENTION_DAYS)),
        "status": snapshot.status,
        "snapshotType": "scheduled",
        "frequencyType": "daily",
        "cloudProvider": "AWS",
        "copyRegions": [],
        "policyItems": [],
        "mongodVersion": MONGOD_VERSION,
        "links": [{"href": format!("{base_url}{path}/{}", snapshot.id), "rel": "self"}],
    });
    if cluster.shards == 0 {
        value["type"] = json!("replicaSet");
        value["replicaSetName"] = json!(cluster.name);
    } else {
        value["type"] = json!("shardedCluster");
    }
    if snapshot.status == "completed" {
        value["storageSizeBytes"] = json!(1_u64 << 30);
    }
    value
}

/// `GET .../backup/snapshots`: newest first, paged. The OpenAPI definition has no `status` filter
/// (an unknown query parameter is ignored); `pointInTimeUtcSeconds`, or `oplogTs` with
/// `oplogInc`, return only the newest completed snapshot taken at or before that time. Snapshots
/// of a sharded cluster are listed too, with `type: shardedCluster` (Atlas also serves them at
/// `.../backup/snapshots/shardedClusters`, which the double does not).
pub(super) fn list_snapshots(
    state: &State,
    params: &Params,
    headers: &HeaderMap,
    query: &Query,
) -> Result<Reply, Reply> {
    require_version(headers)?;
    let cluster = api::find_cluster(state, &params.group_id, &params.cluster_name)?;
    let paging = query.paging()?;
    let point = snapshot_point(query)?;
    let mut snapshots: Vec<(usize, &CloudSnapshot)> = state
        .cloud_snapshots
        .iter()
        .enumerate()
        .filter(|(_, s)| same_cluster(&cluster, &s.group_id, &s.cluster_name))
        .collect();
    snapshots.sort_by(|(ia, a), (ib, b)| b.created_at.cmp(&a.created_at).then(ib.cmp(ia)));
    if let Some(point) = point {
        snapshots.retain(|(_, s)| s.status == "completed" && s.created_at.timestamp() <= point);
        snapshots.truncate(1);
    }
    let path = format!("{}/backup/snapshots", cluster_path(&cluster));
    let items = snapshots
        .into_iter()
        .map(|(_, s)| snapshot_json(&state.base_url, &path, &cluster, s))
        .collect();
    let page = api::page(&state.base_url, &path, &paging, items);
    Ok(Reply::json(200, page).versioned())
}

/// `GET .../backup/snapshots/{snapshotId}`: one snapshot, or 404 `SNAPSHOT_NOT_FOUND`.
pub(super) fn get_snapshot(
    state: &State,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Reply, Reply> {
    require_version(headers)?;
    let cluster = api::find_cluster(state, &params.group_id, &params.cluster_name)?;
    let path = format!("{}/backup/snapshots", cluster_path(&cluster));
    state
        .cloud_snapshots
        .iter()
        .find(|s| same_cluster(&cluster, &s.group_id, &s.cluster_name) && s.id == params.job_id)
        .map(|s| Reply::json(200, snapshot_json(&state.base_url, &path, &cluster, s)).versioned())
        .ok_or_else(|| {
            Reply::api_error(
                404,
                "SNAPSHOT_NOT_FOUND",
                format!(
                    "No snapshot with ID {} exists in cluster {}.",
                    params.job_id, cluster.name
                ),
            )
        })
}

/// Applies [`CloudJobState`] to a served job.
pub(super) fn apply_state(job: &mut Value, job_state: &CloudJobState) {
    let Value::Object(map) = job else {
        return;
    };
    match job_state.finished_at {
        Some(finished) => {
            map.insert("finishedAt".into(), json!(rfc3339(finished)));
        }
        None => {
            map.remove("finishedAt");
        }
    }
    map.insert("failed".into(), json!(job_state.failed));
    map.insert("cancelled".into(), json!(job_state.cancelled));
    map.insert("expired".into(), json!(job_state.expired));
    let download = map.get("deliveryType") == Some(&json!("download"));
    match &job_state.delivery_url {
        Some(urls) => {
            map.insert("deliveryUrl".into(), json!(urls));
        }
        None if download => {
            map.insert("deliveryUrl".into(), json!([]));
        }
        None => {
            map.remove("deliveryUrl");
        }
    }
    if let Some(Value::Array(components)) = map.get_mut("components") {
        for (index, component) in components.iter_mut().enumerate() {
            let url = job_state.delivery_url.as_ref().and_then(|u| u.get(index));
            if let Some(component) = component.as_object_mut() {
                match url {
                    Some(url) => component.insert("downloadUrl".into(), json!(url)),
                    None => component.remove("downloadUrl"),
                };
            }
        }
    }
}

//! The Atlas routes: resolution, query parameters, pages and the restore-job rules.

use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, TimeZone, Utc};
use hyper::HeaderMap;
use serde_json::{Map, Value, json};

use super::{Cluster, Job, Reply, Route, State, cloud, object_id, random_hex};

const V1: &str = "/api/atlas/v1.0";
const MAX_ITEMS_PER_PAGE: usize = 500;
/// `pointInTimeUTCMillis` minimum in the OpenAPI definition (2008-01-01).
const MIN_POINT_IN_TIME_MILLIS: i64 = 1_199_145_600_000;

/// What a request path (and method) designates.
pub(super) enum Target {
    /// A known route with its decoded path parameters.
    Api(Route, Params),
    /// `/api/oauth/token`, any method.
    Token,
    /// A known Atlas path with the wrong method; the value is the `Allow` header.
    MethodNotAllowed(&'static str),
    /// Under `/api/atlas/` but not a route of the double.
    NotFound,
    /// Outside the Atlas API (no authentication asked).
    Outside,
}

impl Target {
    pub(super) fn route(&self) -> Option<Route> {
        match self {
            Target::Api(route, _) => Some(*route),
            Target::Token => Some(Route::Token),
            _ => None,
        }
    }
}

pub(super) struct Params {
    pub(super) group_id: String,
    pub(super) cluster_name: String,
    pub(super) job_id: String,
}

pub(super) fn resolve(method: &str, path: &str) -> Target {
    if path == "/api/oauth/token" {
        return Target::Token;
    }
    if !path.starts_with("/api/atlas/") {
        return Target::Outside;
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Target::NotFound;
    }
    let params = |group: &str, cluster: &str, job: &str| Params {
        group_id: percent_decode(group),
        cluster_name: percent_decode(cluster),
        job_id: percent_decode(job),
    };
    let get = method == "GET";
    let (version, group, rest) = match segments.as_slice() {
        ["api", "atlas", version, "groups", group, rest @ ..] => (*version, *group, rest),
        _ => return Target::NotFound,
    };
    if let ("v1.0", ["clusters"]) = (version, rest) {
        return match get {
            true => Target::Api(Route::ListClusters, params(group, "", "")),
            false => Target::MethodNotAllowed("GET"),
        };
    }
    let (cluster, leaves) = match rest {
        ["clusters", cluster, leaves @ ..] => (*cluster, leaves),
        _ => return Target::NotFound,
    };
    let api = |route: Route, item: &str| Target::Api(route, params(group, cluster, item));
    // Atlas also cancels a job (DELETE) and takes an on-demand snapshot (POST) on some of these
    // paths; the double does neither.
    match (version, leaves) {
        ("v1.0", ["restoreJobs"]) => match method {
            "GET" => api(Route::ListRestoreJobs, ""),
            "POST" => api(Route::CreateRestoreJob, ""),
            _ => Target::MethodNotAllowed("GET, POST"),
        },
        ("v1.0", ["restoreJobs", job]) if get => api(Route::GetRestoreJob, job),
        ("v1.0", ["snapshots"]) if get => api(Route::ListSnapshots, ""),
        ("v1.0", ["snapshots", snapshot]) if get => api(Route::GetSnapshot, snapshot),
        ("v1.0", ["checkpoints", checkpoint]) if get => api(Route::GetCheckpoint, checkpoint),
        ("v1.0", ["restoreJobs", _] | ["snapshots"]) => Target::MethodNotAllowed("GET"),
        ("v2", ["backup", "restoreJobs"]) => match method {
            "GET" => api(Route::ListCloudRestoreJobs, ""),
            "POST" => api(Route::CreateCloudRestoreJob, ""),
            _ => Target::MethodNotAllowed("GET, POST"),
        },
        ("v2", ["backup", "restoreJobs", job]) if get => api(Route::GetCloudRestoreJob, job),
        ("v2", ["backup", "snapshots"]) if get => api(Route::ListCloudSnapshots, ""),
        ("v2", ["backup", "snapshots", snapshot]) if get => api(Route::GetCloudSnapshot, snapshot),
        ("v2", ["backup", "restoreJobs", _] | ["backup", "snapshots"]) => {
            Target::MethodNotAllowed("GET")
        }
        _ => Target::NotFound,
    }
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| segment.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded query string.
#[derive(Clone, Default)]
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(query: Option<&str>) -> Query {
        let pairs = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        Query(
            pairs
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when the parameter is `true` (any case).
    pub(super) fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn boolean(&self, name: &str, default: bool) -> Result<bool, Reply> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(invalid_query(name)),
        }
    }

    pub(super) fn paging(&self) -> Result<Paging, Reply> {
        let number = |name: &str, default: usize, max: usize| match self.get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(invalid_query(name)),
            },
        };
        Ok(Paging {
            items_per_page: number("itemsPerPage", 100, MAX_ITEMS_PER_PAGE)?,
            page_num: number("pageNum", 1, usize::MAX)?,
            include_count: self.boolean("includeCount", true)?,
        })
    }
}

pub(super) struct Paging {
    items_per_page: usize,
    page_num: usize,
    include_count: bool,
}

pub(super) fn invalid_query(name: &str) -> Reply {
    Reply::api_error(
        400,
        "INVALID_QUERY_PARAMETER",
        format!("Invalid query parameter {name} specified."),
    )
}

pub(super) fn invalid_attribute(name: &str) -> Reply {
    Reply::api_error(
        400,
        "INVALID_ATTRIBUTE",
        format!("Invalid attribute {name} specified."),
    )
}

pub(super) fn not_found(target: &str) -> Reply {
    Reply::api_error(
        404,
        "RESOURCE_NOT_FOUND",
        format!("Cannot find resource {target}."),
    )
}

pub(super) fn method_not_allowed(allow: &'static str) -> Reply {
    Reply::api_error(
        405,
        "METHOD_NOT_ALLOWED",
        "Method not allowed on this resource.",
    )
    .header("allow", allow)
}

pub(super) fn group_not_found(group_id: &str) -> Reply {
    Reply::api_error(
        404,
        "GROUP_NOT_FOUND",
        format!("No group with ID {group_id} exists."),
    )
}

pub(super) fn cluster_not_found(group_id: &str, name: &str) -> Reply {
    Reply::api_error(
        404,
        "CLUSTER_NOT_FOUND",
        format!("No cluster named {name} exists in group {group_id}."),
    )
}

pub(super) fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn is_hex24(text: &str) -> bool {
    text.len() == 24 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Runs a route for an authenticated request.
pub(super) fn process(
    state: &mut State,
    route: Route,
    params: &Params,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let result = match route {
        Route::CreateRestoreJob => create_restore_job(state, params, body, Utc::now()),
        Route::ListRestoreJobs => list_restore_jobs(state, params, query),
        Route::GetRestoreJob => get_restore_job(state, params),
        Route::ListSnapshots => list_snapshots(state, params, query),
        Route::ListClusters => list_clusters(state, params, query),
        Route::CreateCloudRestoreJob => cloud::create_restore_job(state, params, headers, body),
        Route::ListCloudRestoreJobs => cloud::list_restore_jobs(state, params, headers, query),
        Route::GetCloudRestoreJob => cloud::get_restore_job(state, params, headers),
        Route::ListCloudSnapshots => cloud::list_snapshots(state, params, headers, query),
        Route::GetSnapshot => get_snapshot(state, params),
        Route::GetCheckpoint => get_checkpoint(state, params),
        Route::GetCloudSnapshot => cloud::get_snapshot(state, params, headers),
        Route::Token => unreachable!("the token route is served by auth"),
    };
    result.unwrap_or_else(|reply| reply)
}

pub(super) fn find_cluster(state: &State, group_id: &str, name: &str) -> Result<Cluster, Reply> {
    if !state.groups.iter().any(|g| g == group_id) {
        return Err(group_not_found(group_id));
    }
    state
        .cluster(group_id, name)
        .cloned()
        .ok_or_else(|| cluster_not_found(group_id, name))
}

fn cluster_path(group_id: &str, cluster_name: &str) -> String {
    format!("{V1}/groups/{group_id}/clusters/{cluster_name}")
}

/// A page `{links, results, totalCount}` of `items` (all items, before paging).
pub(super) fn page(base_url: &str, path: &str, paging: &Paging, items: Vec<Value>) -> Value {
    let total = items.len();
    let start = paging
        .items_per_page
        .saturating_mul(paging.page_num - 1)
        .min(total);
    let results: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(paging.items_per_page)
        .collect();
    let link = |page_num: usize, rel: &str| {
        json!({
            "href": format!("{base_url}{path}?pageNum={page_num}&itemsPerPage={}", paging.items_per_page),
            "rel": rel,
        })
    };
    let mut links = vec![link(paging.page_num, "self")];
    if paging.page_num > 1 {
        links.push(link(paging.page_num - 1, "previous"));
    }
    if start + results.len() < total {
        links.push(link(paging.page_num + 1, "next"));
    }
    let mut page = json!({"links": links, "results": results});
    if paging.include_count {
        page["totalCount"] = json!(total);
    }
    page
}

/// The restore point named by a create request.
enum Point {
    Snapshot { id: String, created: DateTime<Utc> },
    Checkpoint,
    Oplog { ts: String, inc: i64 },
    Millis(i64),
}

pub(super) fn present<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    body.get(key).filter(|v| !v.is_null())
}

fn restore_point(
    state: &State,
    cluster: &Cluster,
    body: &Map<String, Value>,
    automated: bool,
) -> Result<Point, Reply> {
    let snapshot = present(body, "snapshotId");
    let checkpoint = present(body, "checkpointId");
    let (oplog_ts, oplog_inc) = (present(body, "oplogTs"), present(body, "oplogInc"));
    let pit = present(body, "pointInTimeUTCMillis");
    let kinds = [
        snapshot.is_some(),
        checkpoint.is_some(),
        oplog_ts.is_some() || oplog_inc.is_some(),
        pit.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(Reply::api_error(
            400,
            "INVALID_ATTRIBUTE",
            "Exactly one of snapshotId, checkpointId, oplogTs with oplogInc, or pointInTimeUTCMillis must be specified.",
        ));
    }
    if let Some(snapshot) = snapshot {
        let id = snapshot
            .as_str()
            .ok_or_else(|| invalid_attribute("snapshotId"))?;
        let found = state.snapshots.iter().find(|s| {
            s.id == id && s.group_id == cluster.group_id && s.cluster_name == cluster.name
        });
        return match found {
            Some(s) => Ok(Point::Snapshot {
                id: s.id.clone(),
                created: s.created,
            }),
            None => Err(Reply::api_error(
                404,
                "SNAPSHOT_NOT_FOUND",
                format!(
                    "No snapshot with ID {id} exists in cluster {}.",
                    cluster.name
                ),
            )),
        };
    }
    // Every other kind is a point-in-time restore: automated restores only.
    if !automated {
        let name = if checkpoint.is_some() {
            "checkpointId"
        } else if pit.is_some() {
            "pointInTimeUTCMillis"
        } else {
            "oplogTs"
        };
        return Err(invalid_attribute(name));
    }
    if let Some(checkpoint) = checkpoint {
        return match checkpoint.as_str() {
            Some(id) if is_hex24(id) => Ok(Point::Checkpoint),
            _ => Err(invalid_attribute("checkpointId")),
        };
    }
    if let Some(pit) = pit {
        let millis = pit
            .as_i64()
            .ok_or_else(|| invalid_attribute("pointInTimeUTCMillis"))?;
        let now = Utc::now().timestamp_millis();
        let day = 24 * 3600 * 1000;
        if millis < MIN_POINT_IN_TIME_MILLIS || millis < now - day || millis > now {
            return Err(invalid_attribute("pointInTimeUTCMillis"));
        }
        return Ok(Point::Millis(millis));
    }
    let ts = oplog_ts
        .and_then(Value::as_str)
        .filter(|ts| DateTime::parse_from_rfc3339(ts).is_ok() || ts.parse::<u32>().is_ok())
        .ok_or_else(|| invalid_attribute("oplogTs"))?;
    let inc = oplog_inc
        .and_then(Value::as_i64)
        .filter(|inc| (1..=i64::from(i32::MAX)).contains(inc))
        .ok_or_else(|| invalid_attribute("oplogInc"))?;
    Ok(Point::Oplog {
        ts: ts.to_owned(),
        inc,
    })
}

/// Checks an `AUTOMATED_RESTORE` target (the target fields are echoed as sent).
fn check_target(state: &State, delivery: &Map<String, Value>) -> Result<(), Reply> {
    let text = |key: &str| match delivery.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid_attribute(&format!("delivery.{key}"))),
    };
    let group_id =
        text("targetGroupId")?.ok_or_else(|| invalid_attribute("delivery.targetGroupId"))?;
    let name = text("targetClusterName")?;
    let id = text("targetClusterId")?;
    if name.is_none() && id.is_none() {
        return Err(invalid_attribute("delivery.targetClusterName"));
    }
    if !state.groups.iter().any(|g| g == group_id) {
        return Err(group_not_found(group_id));
    }
    let in_group = |c: &&Cluster| c.group_id == group_id;
    let by_name = name.map(|n| state.clusters.iter().filter(in_group).find(|c| c.name == n));
    let by_id = id.map(|i| state.clusters.iter().filter(in_group).find(|c| c.id == i));
    match (by_name, by_id) {
        (Some(None), _) => Err(cluster_not_found(group_id, name.unwrap_or_default())),
        (_, Some(None)) => Err(Reply::api_error(
            404,
            "CLUSTER_NOT_FOUND",
            format!(
                "No cluster with ID {} exists in group {group_id}.",
                id.unwrap_or_default()
            ),
        )),
        (Some(Some(a)), Some(Some(b))) if a.id != b.id => {
            Err(invalid_attribute("delivery.targetClusterId"))
        }
        _ => Ok(()),
    }
}

fn positive_int(delivery: &Map<String, Value>, key: &str) -> Result<(), Reply> {
    match present(delivery, key) {
        None => Ok(()),
        Some(v)
            if v.as_i64()
                .is_some_and(|n| (1..=i64::from(i32::MAX)).contains(&n)) =>
        {
            Ok(())
        }
        Some(_) => Err(invalid_attribute(&format!("delivery.{key}"))),
    }
}

/// Creates the job(s) of a legacy restore as Atlas does, as of `now`: the answer's page, or the
/// error Atlas would answer.
pub(super) fn create_restore_job(
    state: &mut State,
    params: &Params,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Reply, Reply> {
    let cluster = find_cluster(state, &params.group_id, &params.cluster_name)?;
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
        return Err(Reply::api_error(
            400,
            "INVALID_JSON",
            "Received JSON is malformed.",
        ));
    };
    let Some(Value::Object(delivery)) = request.get("delivery") else {
        return Err(invalid_attribute("delivery"));
    };
    let method = match delivery.get("methodName") {
        Some(Value::String(m)) if m == "AUTOMATED_RESTORE" || m == "HTTP" => m.as_str(),
        _ => return Err(invalid_attribute("delivery.methodName")),
    };
    let automated = method == "AUTOMATED_RESTORE";
    let point = restore_point(state, &cluster, &request, automated)?;
    if automated {
        check_target(state, delivery)?;
    } else {
        positive_int(delivery, "expirationHours")?;
        positive_int(delivery, "maxDownloads")?;
    }

    let (date, increment) = match &point {
        Point::Snapshot { created, .. } => (rfc3339(*created), 1),
        Point::Checkpoint => (rfc3339(now), 1),
        Point::Oplog { ts, inc } => {
            let date = DateTime::parse_from_rfc3339(ts)
                .map(|d| d.with_timezone(&Utc))
                .ok()
                .or_else(|| Utc.timestamp_opt(ts.parse().ok()?, 0).single())
                .unwrap_or(now);
            (rfc3339(date), *inc)
        }
        Point::Millis(millis) => {
            let date = Utc.timestamp_millis_opt(*millis).single().unwrap_or(now);
            (date.to_rfc3339_opts(SecondsFormat::Millis, true), 1)
        }
    };
    let point_in_time = !matches!(point, Point::Snapshot { .. });
    let jobs_path = format!(
        "{}/restoreJobs",
        cluster_path(&cluster.group_id, &cluster.name)
    );
    let count = if cluster.shards == 0 {
        1
    } else {
        cluster.shards + 1
    };
    let batch_id = (cluster.shards > 0).then(|| object_id(now));
    let mut created = Vec::with_capacity(count);
    for _ in 0..count {
        let id = object_id(now);
        let mut delivery_out = Map::new();
        // Atlas answers HTTP for both: "an automated restore uses HTTP to deliver the restore
        // job to the target host". Only the targets tell an automated restore from a download.
        delivery_out.insert("methodName".into(), json!("HTTP"));
        delivery_out.insert("statusName".into(), json!("NOT_STARTED"));
        let copied: &[&str] = if automated {
            &["targetGroupId", "targetClusterName", "targetClusterId"]
        } else {
            &["expirationHours", "maxDownloads"]
        };
        for key in copied {
            if let Some(value) = present(delivery, key) {
                delivery_out.insert((*key).into(), value.clone());
            }
        }
        if !automated {
            let file = format!("{}-{id}.tar.gz", cluster.name);
            let (base, secret) = (&state.base_url, random_hex(16));
            delivery_out.insert(
                "url".into(),
                json!(format!(
                    "{base}/backup/restore/v2/pull/{id}/{secret}/{file}"
                )),
            );
            delivery_out.insert(
                "urlV2".into(),
                json!(format!("{base}/backup/restore/v3/pull/{id}/{file}")),
            );
        }
        let mut job = json!({
            "id": id,
            "clusterId": cluster.id,
            "clusterName": cluster.name,
            "groupId": cluster.group_id,
            "created": rfc3339(now),
            "delivery": delivery_out,
            "statusName": "IN_PROGRESS",
            "timestamp": {"date": date, "increment": increment},
            "encryptionEnabled": false,
            "pointInTime": point_in_time,
            "links": [{"href": format!("{}{jobs_path}/{id}", state.base_url), "rel": "self"}],
        });
        if let Some(batch_id) = &batch_id {
            job["batchId"] = json!(batch_id);
        }
        // checkpointId, oplogTs, oplogInc and pointInTimeUTCMillis are writeOnly in the OpenAPI
        // definition: like Atlas, the job does not echo them; `timestamp` carries the point.
        if let Point::Snapshot { id, .. } = &point {
            job["snapshotId"] = json!(id);
        }
        state.jobs.push(Job {
            group_id: cluster.group_id.clone(),
            cluster_name: cluster.name.clone(),
            value: job.clone(),
            request_body: body.to_vec(),
        });
        created.push(job);
    }
    let paging = Paging {
        items_per_page: MAX_ITEMS_PER_PAGE,
        page_num: 1,
        include_count: true,
    };
    let mut body = page(&state.base_url, &jobs_path, &paging, created);
    body["links"] = json!([{"href": format!("{}{jobs_path}", state.base_url), "rel": "self"}]);
    Ok(Reply::json(200, body))
}

fn list_restore_jobs(state: &State, params: &Params, query: &Query) -> Result<Reply, Reply> {
    let cluster = find_cluster(state, &params.group_id, &params.cluster_name)?;
    let paging = query.paging()?;
    let batch_id = query.get("batchId");
    if batch_id.is_some_and(|b| !is_hex24(b)) {
        return Err(invalid_query("batchId"));
    }
    let items = state
        .jobs
        .iter()
        .rev()
        .filter(|job| job.group_id == cluster.group_id && job.cluster_name == cluster.name)
        .filter(|job| batch_id.is_none_or(|b| job.value["batchId"] == b))
        .map(|job| job.value.clone())
        .collect();
    let path = format!(
        "{}/restoreJobs",
        cluster_path(&cluster.group_id, &cluster.name)
    );
    Ok(Reply::json(
        200,
        page(&state.base_url, &path, &paging, items),
    ))
}

fn get_restore_job(state: &State, params: &Params) -> Result<Reply, Reply> {
    let cluster = find_cluster(state, &params.group_id, &params.cluster_name)?;
    let job = state.jobs.iter().find(|job| {
        job.group_id == cluster.group_id
            && job.cluster_name == cluster.name
            && job.value["id"] == params.job_id.as_str()
    });
    match job {
        Some(job) => Ok(Reply::json(200, job.value.clone())),
        None => Err(Reply::api_error(
            404,
            "RESTORE_JOB_NOT_FOUND",
            format!(
                "No restore job with ID {} exists in cluster {}.",
                params.job_id, cluster.name
            ),
        )),
    }
}

fn list_snapshots(state: &State, params: &Params, query: &Query) -> Result<Reply, Reply> {
    let cluster = find_cluster(state, &params.group_id, &params.cluster_name)?;
    let paging = query.paging()?;
    // Atlas: "By default, MongoDB Cloud only returns completed snapshots."
    let wanted: Option<bool> = match query
        .get("completed")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("true") => Some(true),
        Some("false") => Some(false),
        Some("all") => None,
        Some(_) => return Err(invalid_query("completed")),
    };
    let path = format!(
        "{}/snapshots",
        cluster_path(&cluster.group_id, &cluster.name)
    );
    let mut snapshots: Vec<(usize, &super::Snapshot)> = state
        .snapshots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.group_id == cluster.group_id && s.cluster_name == cluster.name)
        .filter(|(_, s)| wanted.is_none_or(|w| s.complete == w))
        .collect();
    snapshots.sort_by(|(ia, a), (ib, b)| b.created.cmp(&a.created).then(ib.cmp(ia)));
    let items = snapshots
        .into_iter()
        .map(|(_, s)| snapshot_json(state, &cluster, &path, s))
        .collect();
    Ok(Reply::json(
        200,
        page(&state.base_url, &path, &paging, items),
    ))
}

/// A legacy snapshot as Atlas serves it (`BackupSnapshot`). Its data is as of
/// `lastOplogAppliedTimestamp`, two minutes before it was `created`.
fn snapshot_json(state: &State, cluster: &Cluster, path: &str, s: &super::Snapshot) -> Value {
    json!({
        "id": s.id,
        "clusterId": cluster.id,
        "clusterName": cluster.name,
        "groupId": cluster.group_id,
        "complete": s.complete,
        "created": {"date": rfc3339(s.created), "increment": 1},
        "lastOplogAppliedTimestamp": {"date": rfc3339(s.created - ChronoDuration::minutes(2)), "increment": 1},
        "expires": rfc3339(s.created + ChronoDuration::days(7)),
        "doNotDelete": false,
        "incremental": false,
        "links": [{"href": format!("{}{path}/{}", state.base_url, s.id), "rel": "self"}],
    })
}

/// `GET .../snapshots/{snapshotId}`: one legacy snapshot, or 404 `SNAPSHOT_NOT_FOUND`.
fn get_snapshot(state: &State, params: &Params) -> Result<Reply, Reply> {
    let cluster = find_cluster(state, &params.group_id, &params.cluster_name)?;
    let path = format!(
        "{}/snapshots",
        cluster_path(&cluster.group_id, &cluster.name)
    );
    state
        .snapshots
        .iter()
        .find(|s| {
            s.group_id == cluster.group_id
                && s.cluster_name == cluster.name
                && s.id == params.job_id
        })
        .map(|s| Reply::json(200, snapshot_json(state, &cluster, &path, s)))
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

/// `GET .../checkpoints/{checkpointId}` (sharded clusters): one checkpoint, or 404
/// `CHECKPOINT_NOT_FOUND`. Atlas's documented shape: `timestamp` is the checkpoint's time.
fn get_checkpoint(state: &State, params: &Params) -> Result<Reply, Reply> {
    let cluster = find_cluster(state, &params.group_id, &params.cluster_name)?;
    state
        .checkpoints
        .iter()
        .find(|c| {
            c.group_id == cluster.group_id
                && c.cluster_name == cluster.name
                && c.id == params.job_id
        })
        .map(|c| {
            Reply::json(
                200,
                json!({
                    "id": c.id,
                    "clusterId": cluster.id,
                    "groupId": cluster.group_id,
                    "completed": rfc3339(c.timestamp + ChronoDuration::seconds(20)),
                    "started": rfc3339(c.timestamp - ChronoDuration::seconds(10)),
                    "restorable": true,
                    "timestamp": rfc3339(c.timestamp),
                    "parts": [],
                    "links": [],
                }),
            )
        })
        .ok_or_else(|| {
            Reply::api_error(
                404,
                "CHECKPOINT_NOT_FOUND",
                format!(
                    "No checkpoint with ID {} exists in cluster {}.",
                    params.job_id, cluster.name
                ),
            )
        })
}

fn list_clusters(state: &State, params: &Params, query: &Query) -> Result<Reply, Reply> {
    if !state.groups.contains(&params.group_id) {
        return Err(group_not_found(&params.group_id));
    }
    let paging = query.paging()?;
    let items = state
        .clusters
        .iter()
        .filter(|c| c.group_id == params.group_id)
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "groupId": c.group_id,
                "clusterType": if c.shards == 0 { "REPLICASET" } else { "SHARDED" },
                "numShards": c.shards.max(1),
                "stateName": "IDLE",
                "backupEnabled": true,
                "providerBackupEnabled": false,
                "links": [{
                    "href": format!("{}{}", state.base_url, cluster_path(&c.group_id, &c.name)),
                    "rel": "self",
                }],
            })
        })
        .collect();
    let path = format!("{V1}/groups/{}/clusters", params.group_id);
    Ok(Reply::json(
        200,
        page(&state.base_url, &path, &paging, items),
    ))
}

//! Reading a drill's evidence over the webhook's HTTP API (CONTRACT section 7):
//! `GET /drills/{name}` (JSON, signed in the headers like the status lookup) and
//! `GET /drills/{name}/report` and `/report.csv` (signed in the query, opened from a link).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::command::DrillName;
use crate::drill::{self, EvidenceRecord, Summary, link, report};
use crate::handler::App;
use crate::ports::{DependencyError, Ports, Secrets};
use crate::triggers::signature::{SignatureHeaders, verify};

/// What a `GET .../drills/...` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrillView {
    Json,
    Html,
    Csv,
}

/// A `GET` on a drills path, as read before anything is checked.
#[derive(Debug)]
pub struct DrillRequest {
    pub view: DrillView,
    /// The name as sent in the path (still percent-encoded): what the signature covers.
    pub name_as_sent: String,
    /// The name decoded, `None` when it does not decode as UTF-8.
    pub name: Option<String>,
    /// The query's parameters, decoded, in order.
    pub query: Vec<(String, String)>,
}

impl DrillRequest {
    /// A `GET` whose path is `.../drills/{name}`, `.../drills/{name}/report` or
    /// `.../drills/{name}/report.csv` (a stage name may come first); `None` for anything else.
    /// Any other path under `/drills/` is a drills request with no view: 400.
    pub fn read(event: &Value, method: &str) -> Option<Result<DrillRequest, String>> {
        if !method.eq_ignore_ascii_case("GET") {
            return None;
        }
        let path = event
            .get("rawPath")
            .or_else(|| event.pointer("/requestContext/http/path"))
            .and_then(Value::as_str)?;
        let (_, rest) = path.split_once("/drills/")?;
        let (name_as_sent, view) = match rest.split_once('/') {
            None => (rest, DrillView::Json),
            Some((name, "report")) => (name, DrillView::Html),
            Some((name, "report.csv")) => (name, DrillView::Csv),
            Some(_) => {
                return Some(Err(format!(
                    "no such path {path:?}: GET /drills/{{name}}, /drills/{{name}}/report or /drills/{{name}}/report.csv (a drill's name has no \"/\")"
                )));
            }
        };
        let name = percent_encoding::percent_decode_str(name_as_sent)
            .decode_utf8()
            .ok()
            .map(|n| n.into_owned());
        Some(Ok(DrillRequest {
            view,
            name_as_sent: name_as_sent.to_owned(),
            name,
            query: query_of(event),
        }))
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The signed text of the JSON view: the method, a space and the path.
    fn signed_paths(&self) -> [String; 2] {
        let decoded = self.name.as_deref().unwrap_or(&self.name_as_sent);
        [
            format!("GET /drills/{decoded}"),
            format!("GET /drills/{}", self.name_as_sent),
        ]
    }
}

/// The query: payload 2.0's `rawQueryString`, else `queryStringParameters`.
fn query_of(event: &Value) -> Vec<(String, String)> {
    if let Some(raw) = event.get("rawQueryString").and_then(Value::as_str) {
        return url::form_urlencoded::parse(raw.as_bytes())
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
    }
    event
        .get("queryStringParameters")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(n, v)| Some((n.clone(), v.as_str()?.to_owned())))
        .collect()
}

impl<P: Ports> App<P> {
    /// Answers a drills request: verified first (401 tells an unverified caller nothing),
    /// then its name and parameters (400), then the evidence.
    pub(crate) async fn drills(
        &self,
        request: Result<DrillRequest, String>,
        headers: &SignatureHeaders,
        now: DateTime<Utc>,
    ) -> Result<Value, DependencyError> {
        let signing = match self.runner.secrets().webhook_signing_secrets().await {
            Ok(signing) => signing,
            Err(error) => {
                tracing::error!(%error, "drills: the signing secret could not be read; answering 503");
                return Ok(json_response(
                    503,
                    &json!({"error": "a dependency is unavailable", "retryable": true}),
                ));
            }
        };
        let request = match request {
            Ok(request) => request,
            // No view to verify against: refused alike, whoever asks.
            Err(message) => return Ok(json_response(400, &json!({"message": message}))),
        };
        let verified = match request.view {
            DrillView::Json => request
                .signed_paths()
                .iter()
                .map(|signed| {
                    verify(headers, signed.as_bytes(), &signing, now, true)
                        .map_err(|e| e.to_string())
                })
                .reduce(|first, second| first.or(second))
                .unwrap_or(Ok(())),
            DrillView::Html | DrillView::Csv => {
                let secrets = std::iter::once(&signing.current)
                    .chain(signing.previous.as_ref())
                    .map(|s| s.expose().as_bytes());
                let name = request.name.as_deref().unwrap_or(&request.name_as_sent);
                link::verify(
                    secrets,
                    name,
                    request.param("expires"),
                    request.param("sig"),
                    now,
                )
                .map_err(|e| e.to_string())
            }
        };
        if let Err(reason) = verified {
            tracing::warn!(%reason, view = ?request.view, "drills: unverified request refused with 401");
            return Ok(json_response(401, &json!({"message": "Unauthorized"})));
        }
        let (name, before) = match checked(&request) {
            Ok(checked) => checked,
            Err(problems) => {
                return Ok(json_response(
                    400,
                    &json!({"message": "the request is malformed", "errors": problems}),
                ));
            }
        };
        let Some(records) = self
            .runner
            .drill_history(name.as_str(), before.as_deref())
            .await?
        else {
            return Ok(json_response(
                404,
                &json!({"message": "drills are not configured here: DRILL_TABLE is not set"}),
            ));
        };
        tracing::info!(drill = %name, view = ?request.view, records = records.len(), "drill evidence read");
        Ok(answer(request.view, &name, &records, now))
    }
}

/// The drill's name and the `before` sort key, or each problem with its parameter.
fn checked(request: &DrillRequest) -> Result<(DrillName, Option<String>), Vec<Value>> {
    let mut problems = Vec::new();
    let name = request.name.as_deref().and_then(DrillName::parse);
    if name.is_none() {
        problems.push(json!({"field": "name", "message": format!(
            "the drill's name in the path must be 1 to {} characters of A-Z a-z 0-9 . _ -; got {:?}",
            DrillName::MAX_LEN, request.name.as_deref().unwrap_or(&request.name_as_sent)
        )}));
    }
    let allowed: &[&str] = match request.view {
        DrillView::Json => &["before"],
        DrillView::Html | DrillView::Csv => &["before", "expires", "sig"],
    };
    for (param, _) in &request.query {
        if !allowed.contains(&param.as_str()) {
            problems.push(json!({"field": param, "message": format!("unknown parameter {param:?}; accepted: {}", allowed.join(", "))}));
        }
    }
    let befores: Vec<&str> = request
        .query
        .iter()
        .filter(|(n, _)| n == "before")
        .map(|(_, v)| v.as_str())
        .collect();
    let before = match befores.as_slice() {
        [] => None,
        [one] => {
            let key = drill::before_key(one);
            if key.is_none() {
                problems.push(json!({"field": "before", "message": format!("\"before\" must be an RFC 3339 time such as a record's startedAt (2026-12-01T10:00:00.000000Z); got {one:?}")}));
            }
            key
        }
        _ => {
            problems
                .push(json!({"field": "before", "message": "\"before\" is given more than once"}));
            None
        }
    };
    match name {
        Some(name) if problems.is_empty() => Ok((name, before)),
        _ => Err(problems),
    }
}

/// The evidence in the view asked for.
fn answer(
    view: DrillView,
    name: &DrillName,
    records: &[EvidenceRecord],
    now: DateTime<Utc>,
) -> Value {
    let summary = Summary::of(records);
    match view {
        DrillView::Json => json_response(
            200,
            &json!({"drill": name, "summary": summary, "drills": records}),
        ),
        DrillView::Html => text_response(
            "text/html; charset=utf-8",
            report::render(name.as_str(), records, &summary, now),
            None,
        ),
        DrillView::Csv => text_response(
            "text/csv; charset=utf-8; header=present",
            drill::csv::render(records),
            Some(format!("attachment; filename=\"{name}-drills.csv\"")),
        ),
    }
}

fn json_response(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json", "cache-control": "no-store"},
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
}

/// A page or file for people: private, never cached, nothing loaded from elsewhere.
fn text_response(content_type: &str, body: String, disposition: Option<String>) -> Value {
    let mut headers = json!({
        "content-type": content_type,
        "cache-control": "private, no-store",
        "content-security-policy": report::CONTENT_SECURITY_POLICY,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    });
    if let Some(disposition) = disposition {
        headers["content-disposition"] = json!(disposition);
    }
    json!({"statusCode": 200, "headers": headers, "body": body, "isBase64Encoded": false})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, query: &str) -> Value {
        json!({"rawPath": path, "rawQueryString": query, "requestContext": {"http": {"method": "GET", "path": path}}})
    }

    #[test]
    fn drills_paths_are_told_apart() {
        let read = |path: &str| DrillRequest::read(&get(path, ""), "GET");
        assert_eq!(
            read("/drills/orders-monthly").unwrap().unwrap().view,
            DrillView::Json
        );
        assert_eq!(
            read("/prod/drills/orders-monthly/report")
                .unwrap()
                .unwrap()
                .view,
            DrillView::Html
        );
        assert_eq!(
            read("/drills/orders-monthly/report.csv")
                .unwrap()
                .unwrap()
                .view,
            DrillView::Csv
        );
        assert!(read("/drills/a/b").unwrap().is_err());
        assert!(read("/restore/x").is_none());
        assert!(DrillRequest::read(&get("/drills/x", ""), "POST").is_none());
        let empty = read("/drills/").unwrap().unwrap();
        assert_eq!(empty.name.as_deref(), Some(""));
        assert!(checked(&empty).is_err());
    }

    #[test]
    fn names_and_parameters_are_checked() {
        let req = |path: &str, query: &str| {
            DrillRequest::read(&get(path, query), "GET")
                .unwrap()
                .unwrap()
        };
        let ok = checked(&req(
            "/drills/orders-monthly",
            "before=2026-12-01T10:00:00Z",
        ))
        .unwrap();
        assert_eq!(ok.1.as_deref(), Some("2026-12-01T10:00:00.000000Z"));
        let fields = |r: Result<_, Vec<Value>>| -> Vec<String> {
            r.unwrap_err()
                .iter()
                .map(|p| p["field"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(fields(checked(&req("/drills/a%2Fb", ""))), ["name"]);
        assert_eq!(
            fields(checked(&req("/drills/ok", "before=yesterday"))),
            ["before"]
        );
        assert_eq!(
            fields(checked(&req(
                "/drills/ok",
                "before=2026-12-01T10:00:00Z&before=2026-12-01T10:00:00Z"
            ))),
            ["before"]
        );
        assert_eq!(fields(checked(&req("/drills/ok", "limit=5"))), ["limit"]);
        assert_eq!(
            fields(checked(&req("/drills/ok", "expires=1&sig=x"))),
            ["expires", "sig"]
        );
        assert!(checked(&req("/drills/ok/report", "expires=1&sig=v0%3Dab")).is_ok());
        let decoded = req("/drills/ok/report", "sig=v0%3Dab");
        assert_eq!(decoded.param("sig"), Some("v0=ab"));
    }
}

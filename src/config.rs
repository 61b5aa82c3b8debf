//! The environment (CONTRACT section 5), read and checked once at start-up.

use std::collections::HashMap;
use std::time::Duration;

use url::Url;

// Plain types the core owns; the configuration only reads them from the environment.
pub use crate::notify::NotifyFormat;
pub use crate::policy::ProtectedCluster;

/// The shortest `IDEMPOTENCY_TTL_SECONDS`: Lambda retries an asynchronous event for up to 6 hours,
/// and a key's record must outlive every retry of the event that made it (CONTRACT section 4).
pub const MIN_IDEMPOTENCY_TTL_SECONDS: u64 = 6 * 3600;
/// The longest `FOLLOW_INTERVAL_SECONDS`: SQS delays a message by at most 900 seconds.
pub const MAX_FOLLOW_INTERVAL_SECONDS: u64 = 900;

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub atlas_secret_id: String,
    pub atlas_base_url: Url,
    pub webhook_secret_id: Option<String>,
    pub notify_topic_arn: String,
    pub notify_format: NotifyFormat,
    pub idempotency_table: String,
    pub idempotency_ttl: Duration,
    pub approvers: Vec<String>,
    pub protected_clusters: Vec<ProtectedCluster>,
    pub work_queue_url: Option<String>,
    pub secret_cache_ttl: Duration,
    pub dry_run: bool,
    pub follow_jobs: bool,
    pub follow_interval: Duration,
    pub follow_max: Duration,
    /// DynamoDB table of drill evidence (CONTRACT section 7); drills are refused without it.
    pub drill_table: Option<String>,
    /// The webhook endpoint's public base URL (no trailing `/`), for report links.
    pub public_base_url: Option<Url>,
}

/// What is wrong with the environment; the function does not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required but not set; see the configuration table in the README")]
    Missing(&'static str),
    #[error("{name} is {value:?}: {expected}")]
    Invalid {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(&std::env::vars().collect())
    }

    /// Reads the given variables (tests pass their own). A variable set to blanks is unset.
    /// Checked in this order: the first one wrong is the error.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let vars = Vars(vars);
        let atlas_base_url = atlas_base_url(&vars)?;
        let notify_format = notify_format(&vars)?;
        let protected_clusters = protected_clusters(&vars);
        let follow_jobs = vars.flag("FOLLOW_JOBS")?;
        let work_queue_url = vars.get("WORK_QUEUE_URL");
        if follow_jobs && work_queue_url.is_none() {
            return Err(ConfigError::Missing("WORK_QUEUE_URL"));
        }
        Ok(Config {
            atlas_secret_id: vars.required("ATLAS_SECRET_ID")?,
            atlas_base_url,
            webhook_secret_id: vars.get("WEBHOOK_SECRET_ID"),
            notify_topic_arn: vars.required("NOTIFY_TOPIC_ARN")?,
            notify_format,
            idempotency_table: vars.required("IDEMPOTENCY_TABLE")?,
            idempotency_ttl: vars.seconds(
                "IDEMPOTENCY_TTL_SECONDS",
                86_400,
                (MIN_IDEMPOTENCY_TTL_SECONDS, 365 * 86_400),
                "a whole number of seconds from 21600 (6 hours: Lambda retries an asynchronous event for up to 6 hours, and a record must outlive its retries) to 31536000 (365 days)",
            )?,
            approvers: vars.list("APPROVERS"),
            protected_clusters,
            work_queue_url,
            secret_cache_ttl: vars.seconds(
                "SECRET_CACHE_TTL_SECONDS",
                300,
                (1, 86_400),
                "a whole number of seconds from 1 to 86400 (one day)",
            )?,
            dry_run: vars.flag("DRY_RUN")?,
            follow_jobs,
            follow_interval: vars.seconds(
                "FOLLOW_INTERVAL_SECONDS",
                300,
                (1, MAX_FOLLOW_INTERVAL_SECONDS),
                "a whole number of seconds from 1 to 900: SQS delays a message by at most 900 seconds",
            )?,
            follow_max: vars.hours("FOLLOW_MAX_HOURS", 48.0, 24.0 * 14.0)?,
            drill_table: vars.get("DRILL_TABLE"),
            public_base_url: public_base_url(&vars)?,
        })
    }
}

/// `ATLAS_BASE_URL`: an http(s) URL with a host; `https://cloud.mongodb.com` when unset.
fn atlas_base_url(vars: &Vars<'_>) -> Result<Url, ConfigError> {
    Ok(match vars.get("ATLAS_BASE_URL") {
        None => Url::parse("https://cloud.mongodb.com")
            .map_err(|_| ConfigError::Missing("ATLAS_BASE_URL"))?,
        Some(text) => Url::parse(&text)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
            .ok_or(ConfigError::Invalid {
                name: "ATLAS_BASE_URL",
                value: text,
                expected: "an http(s) URL such as https://cloud.mongodb.com",
            })?,
    })
}

/// `PUBLIC_BASE_URL`: an http(s) URL with a host and no query, such as
/// `https://abc123.execute-api.eu-west-1.amazonaws.com`; unset: no report links.
fn public_base_url(vars: &Vars<'_>) -> Result<Option<Url>, ConfigError> {
    let Some(text) = vars.get("PUBLIC_BASE_URL") else {
        return Ok(None);
    };
    Url::parse(text.trim_end_matches('/'))
        .ok()
        .filter(|u| {
            matches!(u.scheme(), "https" | "http")
                && u.host().is_some()
                && u.query().is_none()
                && u.fragment().is_none()
        })
        .map(Some)
        .ok_or(ConfigError::Invalid {
            name: "PUBLIC_BASE_URL",
            value: text,
            expected: "an http(s) URL with a host and no query, such as https://abc123.execute-api.eu-west-1.amazonaws.com",
        })
}

/// `NOTIFY_FORMAT`: `json` (when unset) or `chatbot`.
fn notify_format(vars: &Vars<'_>) -> Result<NotifyFormat, ConfigError> {
    match vars.get("NOTIFY_FORMAT").as_deref() {
        None | Some("json") => Ok(NotifyFormat::Json),
        Some("chatbot") => Ok(NotifyFormat::Chatbot),
        Some(other) => Err(ConfigError::Invalid {
            name: "NOTIFY_FORMAT",
            value: other.to_owned(),
            expected: "\"json\" or \"chatbot\"",
        }),
    }
}

/// `PROTECTED_CLUSTERS`: `name` or `groupId/name` entries (the group id read in lower case).
fn protected_clusters(vars: &Vars<'_>) -> Vec<ProtectedCluster> {
    vars.list("PROTECTED_CLUSTERS")
        .into_iter()
        .map(|entry| match entry.split_once('/') {
            Some((group, name)) => ProtectedCluster {
                group_id: Some(group.to_ascii_lowercase()),
                name: name.to_owned(),
            },
            None => ProtectedCluster {
                group_id: None,
                name: entry,
            },
        })
        .collect()
}

/// The variables, read by kind.
struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    /// The trimmed value; blank is unset.
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    /// A whole number of seconds from `min` to `max`; the error names both limits and why.
    fn seconds(
        &self,
        name: &'static str,
        default: u64,
        (min, max): (u64, u64),
        expected: &'static str,
    ) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(Duration::from_secs(default)),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|s| (min..=max).contains(s))
                .map(Duration::from_secs)
                .ok_or(ConfigError::Invalid {
                    name,
                    value: text,
                    expected,
                }),
        }
    }

    /// Hours may be fractional (`0.5`), so a drill or a test can stall in minutes.
    fn hours(&self, name: &'static str, default: f64, max: f64) -> Result<Duration, ConfigError> {
        let text = self.get(name);
        let hours = match &text {
            None => Some(default),
            Some(text) => text.parse::<f64>().ok(),
        };
        hours
            .filter(|h| h.is_finite() && *h * 3600.0 >= 1.0 && *h <= max)
            .map(|h| Duration::from_secs_f64(h * 3600.0))
            .ok_or_else(|| ConfigError::Invalid {
                name,
                value: text.unwrap_or_default(),
                expected: "a number of hours (a fraction allowed), at least one second and at most 336",
            })
    }

    /// `true` or `false` in any case; unset is `false`.
    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self
            .get(name)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ConfigError::Invalid {
                name,
                value: other.to_owned(),
                expected: "\"true\" or \"false\"",
            }),
        }
    }

    /// Comma-separated, each entry trimmed, empty entries left out.
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut all: HashMap<String, String> = [
            ("ATLAS_SECRET_ID", "atlas"),
            (
                "NOTIFY_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:123456789012:outcomes",
            ),
            ("IDEMPOTENCY_TABLE", "restores"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            all.insert(k.to_string(), v.to_string());
        }
        all
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!(config.atlas_base_url.as_str(), "https://cloud.mongodb.com/");
        assert_eq!(config.notify_format, NotifyFormat::Json);
        assert_eq!(config.idempotency_ttl, Duration::from_secs(86_400));
        assert_eq!(config.secret_cache_ttl, Duration::from_secs(300));
        assert!(config.approvers.is_empty() && config.protected_clusters.is_empty());
        assert!(!config.dry_run && !config.follow_jobs);
        assert_eq!(config.follow_interval, Duration::from_secs(300));
        assert_eq!(config.follow_max, Duration::from_secs(48 * 3600));
    }

    #[test]
    fn a_missing_required_variable_is_named() {
        for name in ["ATLAS_SECRET_ID", "NOTIFY_TOPIC_ARN", "IDEMPOTENCY_TABLE"] {
            let mut all = vars(&[]);
            all.remove(name);
            let error = Config::from_vars(&all).unwrap_err();
            assert_eq!(error, ConfigError::Missing(name));
            assert!(error.to_string().contains(name));
        }
    }

    #[test]
    fn lists_and_flags_are_read_strictly() {
        let config = Config::from_vars(&vars(&[
            ("APPROVERS", " U1, U2 ,,"),
            (
                "PROTECTED_CLUSTERS",
                "orders,5E2211C17A3E5A48F5497DE3/billing",
            ),
            ("DRY_RUN", "TRUE"),
            ("NOTIFY_FORMAT", "chatbot"),
        ]))
        .unwrap();
        assert_eq!(config.approvers, vec!["U1", "U2"]);
        assert_eq!(
            config.protected_clusters,
            vec![
                ProtectedCluster {
                    group_id: None,
                    name: "orders".into()
                },
                ProtectedCluster {
                    group_id: Some("5e2211c17a3e5a48f5497de3".into()),
                    name: "billing".into()
                },
            ]
        );
        assert!(config.dry_run);
        assert_eq!(config.notify_format, NotifyFormat::Chatbot);
        for (name, value) in [
            ("DRY_RUN", "yes"),
            ("NOTIFY_FORMAT", "xml"),
            ("IDEMPOTENCY_TTL_SECONDS", "-1"),
            ("ATLAS_BASE_URL", "cloud.mongodb.com"),
            ("FOLLOW_INTERVAL_SECONDS", "901"),
            ("FOLLOW_INTERVAL_SECONDS", "0"),
            ("FOLLOW_MAX_HOURS", "0"),
            ("FOLLOW_MAX_HOURS", "0.0001"),
            ("FOLLOW_MAX_HOURS", "337"),
            ("FOLLOW_MAX_HOURS", "NaN"),
            ("FOLLOW_MAX_HOURS", "inf"),
            ("FOLLOW_MAX_HOURS", "two"),
        ] {
            let error = Config::from_vars(&vars(&[(name, value)])).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Invalid { name: n, .. } if *n == name),
                "{name}={value}: {error}"
            );
        }
    }

    #[test]
    fn follow_max_hours_may_be_a_fraction_for_drills_and_tests() {
        let config = Config::from_vars(&vars(&[
            ("FOLLOW_JOBS", "true"),
            ("WORK_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q"),
            ("FOLLOW_MAX_HOURS", "0.01"),
            ("FOLLOW_INTERVAL_SECONDS", "2"),
        ]))
        .unwrap();
        assert!(config.follow_jobs);
        assert_eq!(config.follow_max, Duration::from_secs(36));
        assert_eq!(config.follow_interval, Duration::from_secs(2));
    }

    #[test]
    fn a_key_lifetime_shorter_than_lambda_s_retries_is_refused_naming_the_limit() {
        for value in ["21599", "3600", "1"] {
            let error =
                Config::from_vars(&vars(&[("IDEMPOTENCY_TTL_SECONDS", value)])).unwrap_err();
            assert!(
                matches!(
                    &error,
                    ConfigError::Invalid {
                        name: "IDEMPOTENCY_TTL_SECONDS",
                        ..
                    }
                ),
                "{error}"
            );
            let text = error.to_string();
            assert!(
                text.contains(&MIN_IDEMPOTENCY_TTL_SECONDS.to_string()) && text.contains("6 hours"),
                "the error names the limit and why: {text}"
            );
        }
        let config = Config::from_vars(&vars(&[("IDEMPOTENCY_TTL_SECONDS", "21600")])).unwrap();
        assert_eq!(config.idempotency_ttl, Duration::from_secs(21_600));
    }

    #[test]
    fn a_follow_interval_longer_than_sqs_allows_is_refused_naming_the_limit() {
        for value in ["3600", "901"] {
            let error = Config::from_vars(&vars(&[
                ("FOLLOW_JOBS", "true"),
                ("WORK_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/1/q"),
                ("FOLLOW_INTERVAL_SECONDS", value),
            ]))
            .unwrap_err();
            assert!(
                matches!(
                    &error,
                    ConfigError::Invalid {
                        name: "FOLLOW_INTERVAL_SECONDS",
                        ..
                    }
                ),
                "{error}"
            );
            let text = error.to_string();
            assert!(
                text.contains(&MAX_FOLLOW_INTERVAL_SECONDS.to_string()) && text.contains("SQS"),
                "the error names the limit and why: {text}"
            );
        }
        let config = Config::from_vars(&vars(&[("FOLLOW_INTERVAL_SECONDS", "900")])).unwrap();
        assert_eq!(config.follow_interval, Duration::from_secs(900));
    }

    #[test]
    fn following_jobs_needs_the_work_queue() {
        assert_eq!(
            Config::from_vars(&vars(&[("FOLLOW_JOBS", "true")])).unwrap_err(),
            ConfigError::Missing("WORK_QUEUE_URL")
        );
    }

    #[test]
    fn drill_table_and_public_base_url_are_read() {
        let config = Config::from_vars(&vars(&[
            ("DRILL_TABLE", "drills"),
            (
                "PUBLIC_BASE_URL",
                "https://abc.execute-api.eu-west-1.amazonaws.com/",
            ),
        ]))
        .unwrap();
        assert_eq!(config.drill_table.as_deref(), Some("drills"));
        assert_eq!(
            config.public_base_url.unwrap().as_str(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/"
        );
        let unset = Config::from_vars(&vars(&[])).unwrap();
        assert_eq!((unset.drill_table, unset.public_base_url), (None, None));
    }

    #[test]
    fn a_public_base_url_that_is_no_url_is_refused() {
        for bad in [
            "abc.example.com",
            "ftp://x.example.com",
            "https://x.example.com/?a=b",
        ] {
            let error = Config::from_vars(&vars(&[("PUBLIC_BASE_URL", bad)])).unwrap_err();
            assert!(
                matches!(
                    error,
                    ConfigError::Invalid {
                        name: "PUBLIC_BASE_URL",
                        ..
                    }
                ),
                "{bad}: {error}"
            );
        }
    }
}

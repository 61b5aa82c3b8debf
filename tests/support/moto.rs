//! moto (the AWS API emulator) in server mode, spoken to by the real AWS SDK.
//!
//! Starting moto costs seconds, so each test process keeps a pool of servers: [`moto()`] leases
//! a free one (starting a new one when none is free), so tests run in parallel, each on its own
//! server; dropping the lease resets the server (`POST /moto-api/reset`, and the request counts)
//! and returns it to the pool. Servers left in the pool end when the test process does (their
//! stdin pipe closes; see `serve_wsgi.py`).
//!
//! Each server is `tests/support/moto_app.py` behind `--serialize` (moto is not atomic under
//! concurrency), so SQS is polled with `WaitTimeSeconds=0`, never long-polled: a long poll would
//! hold the server's only request slot.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_sns::config::{Credentials, Region};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use serde_json::Value;

use super::python_server::PythonServer;

/// The process-wide pool behind [`moto()`].
static POOL: LazyLock<MotoPool> = LazyLock::new(MotoPool::new);

/// A moto server for this test alone, reset when the lease is dropped.
pub fn moto() -> MotoLease {
    POOL.lease()
}

type Idle = Arc<Mutex<Vec<PythonServer>>>;

/// A pool of moto servers. Tests use the process-wide one through [`moto()`]; a test of the
/// pool itself may make its own, whose idle servers are stopped when it is dropped.
pub struct MotoPool {
    idle: Idle,
}

impl Default for MotoPool {
    fn default() -> Self {
        MotoPool::new()
    }
}

impl MotoPool {
    pub fn new() -> MotoPool {
        MotoPool {
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A free server of this pool, or a new one.
    pub fn lease(&self) -> MotoLease {
        let free = lock(&self.idle).pop();
        let server = free.unwrap_or_else(|| PythonServer::start("moto_app:app", &["--serialize"]));
        MotoLease {
            server: Some(server),
            home: self.idle.clone(),
        }
    }

    /// How many servers wait for a lease.
    pub fn idle(&self) -> usize {
        lock(&self.idle).len()
    }
}

fn lock(idle: &Idle) -> MutexGuard<'_, Vec<PythonServer>> {
    idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One moto server, for as long as the lease lives.
pub struct MotoLease {
    server: Option<PythonServer>,
    home: Idle,
}

impl MotoLease {
    fn server(&self) -> &PythonServer {
        self.server.as_ref().expect("a live lease holds its server")
    }

    /// `http://127.0.0.1:<port>`: every AWS service of this server.
    pub fn endpoint(&self) -> String {
        self.server().base_url()
    }

    /// An SDK configuration for this server: region `us-east-1`, static credentials
    /// `testing`/`testing`, endpoint the server.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }

    /// How many requests of `action` the server answered since the lease began: the
    /// `X-Amz-Target` of JSON protocols (`secretsmanager.GetSecretValue`,
    /// `DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`), else the query protocol's
    /// `Action` (SNS `Publish`).
    pub fn count(&self, action: &str) -> u64 {
        let counts = self.get_json("/__counts");
        counts.get(action).and_then(Value::as_u64).unwrap_or(0)
    }

    /// Every request count, by action.
    pub fn counts(&self) -> Value {
        self.get_json("/__counts")
    }

    /// What moto holds (`GET /moto-api/data.json`): `sns.Topic[].sent_notifications` lists every
    /// message published, as `[messageId, message, subject, attributes, groupId]`.
    pub fn data(&self) -> Value {
        self.get_json("/moto-api/data.json")
    }

    fn get_json(&self, path: &str) -> Value {
        let port = self.server().port;
        let (status, body) =
            http(port, "GET", path).unwrap_or_else(|e| panic!("GET {path} on moto: {e}"));
        assert_eq!(status, 200, "GET {path} on moto answered {status}");
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("GET {path} on moto is not JSON: {e}"))
    }
}

impl Drop for MotoLease {
    fn drop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        let reset = ["/moto-api/reset", "/__counts/reset"]
            .iter()
            .all(|path| matches!(http(server.port, "POST", path), Ok((200, _))));
        if reset {
            lock(&self.home).push(server);
        }
        // Else the server is dropped, which stops it: the next lease starts a fresh one.
    }
}

/// One blocking HTTP/1.1 exchange with `Connection: close`; no runtime needed, so it works in
/// `Drop` and outside async code alike.
fn http(port: u16, method: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers in the answer")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked { dechunk(&body)? } else { body };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("chunk size {size_text:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        body.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

static QUEUES: AtomicUsize = AtomicUsize::new(0);

/// A new SQS queue (FIFO when `fifo`, as a FIFO topic needs) subscribed to `topic_arn` with
/// `RawMessageDelivery=true`, so that it receives each message body as published, with its
/// message attributes (raw delivery drops the `Subject`: read it from [`MotoLease::data`]).
/// Returns the queue URL.
pub async fn sqs_subscribed_queue(
    config: &aws_config::SdkConfig,
    topic_arn: &str,
    fifo: bool,
) -> String {
    let sqs = aws_sdk_sqs::Client::new(config);
    let number = QUEUES.fetch_add(1, Ordering::Relaxed);
    let name = if fifo {
        format!("outcomes-{number}.fifo")
    } else {
        format!("outcomes-{number}")
    };
    let mut create = sqs.create_queue().queue_name(&name);
    if fifo {
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let created = create.send().await.expect("create the SQS queue");
    let url = created
        .queue_url()
        .expect("CreateQueue answers the queue URL")
        .to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("read the queue ARN");
    let queue_arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("the queue has an ARN")
        .clone();
    aws_sdk_sns::Client::new(config)
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .return_subscription_arn(true)
        .send()
        .await
        .expect("subscribe the queue to the topic");
    url
}

/// The messages on `queue_url`: polls (`WaitTimeSeconds=0`, every 100 ms) until `expected`
/// arrived or about 5 s passed, then once more so that any extra message shows. Asks for every
/// message attribute and system attribute (`MessageGroupId`, `MessageDeduplicationId`), and
/// deletes what it received (a FIFO group releases its next message only then).
pub async fn receive_all(
    config: &aws_config::SdkConfig,
    queue_url: &str,
    expected: usize,
) -> Vec<Message> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut received = Vec::new();
    loop {
        let enough = received.len() >= expected;
        let answer = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive from the SQS queue");
        let batch = answer.messages.unwrap_or_default();
        for message in &batch {
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete a received message");
            }
        }
        let empty = batch.is_empty();
        received.extend(batch);
        if (enough && empty) || Instant::now() >= deadline {
            return received;
        }
        if empty {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

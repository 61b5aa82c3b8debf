//! A keep-alive HTTP/1.1 front for moto, for the warm-path benchmark.
//!
//! moto's server (Werkzeug) answers every request with `Connection: close`, so without this
//! front each AWS call of the function opens a new TCP connection: a cost the function does
//! not pay against AWS, whose endpoints keep connections alive between a warm instance's
//! invocations. The front keeps the function's connections open and forwards each request
//! (method, path, headers, body) to moto over a fresh connection of its own, so the cost of
//! moto's closing lands in the harness, not in the function's CPU time.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct KeepAliveProxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl KeepAliveProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: String) -> KeepAliveProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("a reqwest client");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (client, upstream) = (client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        forward(client.clone(), upstream.clone(), request)
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        KeepAliveProxy { addr, task }
    }

    /// `http://127.0.0.1:PORT`: the value of `AWS_ENDPOINT_URL` for the function.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for KeepAliveProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: reqwest::Client,
    upstream: String,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Ok(bad_gateway(format!("reading the request: {error}"))),
    };
    let mut headers = parts.headers;
    headers.remove(hyper::header::CONNECTION);
    let sent = client
        .request(parts.method, format!("{upstream}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(error) => return Ok(bad_gateway(format!("forwarding to moto: {error}"))),
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    headers.remove(hyper::header::CONNECTION);
    headers.remove(hyper::header::TRANSFER_ENCODING);
    let bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => return Ok(bad_gateway(format!("reading moto's answer: {error}"))),
    };
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn bad_gateway(reason: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reason)));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

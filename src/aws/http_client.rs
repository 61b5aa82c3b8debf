//! The HTTP client of the AWS SDK clients: the SDK's default one (hyper 1, rustls with aws-lc,
//! the system's root certificates, the proxy settings of the environment), built the same way,
//! except that its TLS connector is built on the first request rather than at start-up.
//!
//! The SDK's client builds a connector (reads and parses the system's CA store, builds a rustls
//! configuration) each time a service client is created, "so that native certs load at client
//! initialization time": in the function's init, for the clients `aws_config::load` creates for
//! its credential and region providers (STS among them), then for Secrets Manager, SNS and
//! DynamoDB, the first time reading every file of `/etc/ssl/certs`. Deferred, it is built once, on the first AWS call,
//! and shared by every service (the SDK caches connectors by timeout settings, which all the
//! services share). See docs/PERFORMANCE.md.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::Provider;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The SDK's default HTTPS client (as `aws-smithy-runtime` 1.9 builds it for behaviour versions
/// from 2025-08-07 on), with its connector built on first use.
pub fn deferred_tls_client() -> SharedHttpClient {
    let client = Builder::new().build_with_connector_fn(|settings, components| {
        let mut builder =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        builder.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    });
    SharedHttpClient::new(Deferred(client))
}

/// Delegates everything but `validate_base_client_config`, which the SDK's client uses to build
/// a connector eagerly; the trait's default does nothing.
#[derive(Debug)]
struct Deferred(SharedHttpClient);

impl HttpClient for Deferred {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

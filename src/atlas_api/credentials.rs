use crate::redacted::Secret;

/// How the runner authenticates to Atlas (the `ATLAS_SECRET_ID` secret's two shapes).
/// `Debug` shows which kind and the public identifier, never the secret part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AtlasCredentials {
    /// A programmatic API key: HTTP Digest with the public key as user.
    ApiKey {
        public_key: String,
        private_key: Secret,
    },
    /// A service account: OAuth 2.0 client credentials.
    ServiceAccount {
        client_id: String,
        client_secret: Secret,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret_part() {
        let key = AtlasCredentials::ApiKey {
            public_key: "pub".into(),
            private_key: Secret::new("priv-value"),
        };
        let account = AtlasCredentials::ServiceAccount {
            client_id: "mdb_sa_id".into(),
            client_secret: Secret::new("sa-value"),
        };
        let shown = format!("{key:?} {account:?}");
        assert!(
            !shown.contains("priv-value") && !shown.contains("sa-value"),
            "{shown}"
        );
        assert!(shown.contains("pub") && shown.contains("mdb_sa_id"));
    }
}

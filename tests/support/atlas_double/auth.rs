//! Authentication: HTTP Digest with API keys (RFC 7616, MD5, qop=auth) on the Atlas routes,
//! OAuth 2.0 client credentials with service accounts on `POST /api/oauth/token`.

use std::collections::HashSet;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::HeaderMap;
use serde_json::json;

use super::{Nonce, RecordedAuth, Reply, State, Token, md5_hex, random_hex};

pub(super) const REALM: &str = "MMS Public API";

/// At most this many live tokens per service account, like Atlas (then 403 `access_denied`).
const MAX_LIVE_TOKENS: usize = 100;

/// A 401 `ApiError` with a fresh Digest challenge.
pub(super) fn challenge(state: &mut State, stale: bool) -> Reply {
    let nonce = random_hex(16);
    state.nonces.insert(
        nonce.clone(),
        Nonce {
            issued: Instant::now(),
            expired: false,
            seen_nc: HashSet::new(),
            seen_pairs: HashSet::new(),
        },
    );
    state.challenges += 1;
    let header = format!(
        "Digest realm=\"{REALM}\", domain=\"\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\", stale={stale}"
    );
    Reply::api_error(
        401,
        "NOT_AUTHORIZED",
        "You are not authorized for this resource.",
    )
    .header("www-authenticate", header)
    .no_envelope()
}

/// Authenticates a request on an Atlas route. Returns what to record and, when the request is
/// not authenticated, the answer to send instead of processing it.
pub(super) fn check_api(
    state: &mut State,
    method: &str,
    request_target: &str,
    headers: &HeaderMap,
) -> (RecordedAuth, Option<Reply>) {
    let Some(value) = headers.get("authorization") else {
        return (RecordedAuth::None, Some(challenge(state, false)));
    };
    let Ok(value) = value.to_str() else {
        return (RecordedAuth::Malformed, Some(challenge(state, false)));
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if scheme.eq_ignore_ascii_case("digest") {
        return check_digest(state, method, request_target, rest);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = rest.trim();
        let now = Instant::now();
        let valid = state
            .tokens
            .get(token)
            .is_some_and(|t| !t.revoked && now < t.expires);
        if valid {
            return (RecordedAuth::Bearer { valid: true }, None);
        }
        let reply = Reply::api_error(401, "NOT_AUTHORIZED", "Invalid or expired access token.")
            .header("www-authenticate", "Bearer error=\"invalid_token\"")
            .no_envelope();
        return (RecordedAuth::Bearer { valid: false }, Some(reply));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        // Atlas routes never accept Basic: answer with a Digest challenge.
        let recorded = match decode_basic(rest) {
            Some((client_id, _)) => RecordedAuth::Basic {
                client_id,
                valid: false,
            },
            None => RecordedAuth::Malformed,
        };
        return (recorded, Some(challenge(state, false)));
    }
    (RecordedAuth::Malformed, Some(challenge(state, false)))
}

fn check_digest(
    state: &mut State,
    method: &str,
    request_target: &str,
    params: &str,
) -> (RecordedAuth, Option<Reply>) {
    let Some(params) = parse_auth_params(params) else {
        return (RecordedAuth::Malformed, Some(challenge(state, false)));
    };
    let get = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    let required = (
        get("username"),
        get("realm"),
        get("nonce"),
        get("uri"),
        get("response"),
        get("qop"),
        get("nc"),
        get("cnonce"),
    );
    let (
        Some(user),
        Some(realm),
        Some(nonce),
        Some(uri),
        Some(response),
        Some(qop),
        Some(nc),
        Some(cnonce),
    ) = required
    else {
        return (RecordedAuth::Malformed, Some(challenge(state, false)));
    };
    let nc_value = match u32::from_str_radix(nc, 16) {
        Ok(value) if nc.len() == 8 => value,
        _ => return (RecordedAuth::Malformed, Some(challenge(state, false))),
    };
    let invalid = |state: &mut State| {
        let recorded = RecordedAuth::Digest {
            user: user.to_owned(),
            valid: false,
            stale: false,
        };
        (recorded, Some(challenge(state, false)))
    };
    let algorithm_ok = get("algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5"));
    let Some(password) = state.api_keys.get(user).cloned() else {
        return invalid(state);
    };
    if !algorithm_ok || realm != REALM || uri != request_target || qop != "auth" {
        return invalid(state);
    }
    let ha1 = md5_hex(&format!("{user}:{REALM}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let expected = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"));
    if !response.eq_ignore_ascii_case(&expected) {
        return invalid(state);
    }
    let (ttl, strict) = (state.nonce_ttl, state.strict_nc);
    let Some(entry) = state.nonces.get_mut(nonce) else {
        return invalid(state);
    };
    if entry.expired || entry.issued.elapsed() > ttl {
        let recorded = RecordedAuth::Digest {
            user: user.to_owned(),
            valid: false,
            stale: true,
        };
        return (recorded, Some(challenge(state, true)));
    }
    let pair = (nc_value, cnonce.to_owned());
    let replay = entry.seen_pairs.contains(&pair) || (strict && entry.seen_nc.contains(&nc_value));
    if replay {
        return invalid(state);
    }
    entry.seen_pairs.insert(pair);
    entry.seen_nc.insert(nc_value);
    let recorded = RecordedAuth::Digest {
        user: user.to_owned(),
        valid: true,
        stale: false,
    };
    (recorded, None)
}

/// Parses `key=value, key="quoted, \"value\"", ...` (RFC 7235 auth-params). `None` when malformed.
pub(super) fn parse_auth_params(input: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.peek().copied() {
            if c == '=' || c.is_whitespace() || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None | Some(',') => {}
            Some(_) => return None,
        }
        params.push((key, value));
    }
    Some(params)
}

fn decode_basic(credentials: &str) -> Option<(String, String)> {
    let decoded = STANDARD.decode(credentials.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Authenticates a token request (`Authorization: Basic`): what to record, and the client id
/// when the credentials are valid.
pub(super) fn check_client(state: &State, headers: &HeaderMap) -> (RecordedAuth, Option<String>) {
    let Some(value) = headers.get("authorization") else {
        return (RecordedAuth::None, None);
    };
    let value = value.to_str().unwrap_or_default().trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return (RecordedAuth::Malformed, None);
    }
    let Some((client_id, secret)) = decode_basic(rest) else {
        return (RecordedAuth::Malformed, None);
    };
    // RFC 6749 §2.3.1 form-encodes id and secret before Basic; accept both spellings.
    let form_decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let matches =
        |id: &str, secret: &str| state.service_accounts.get(id).is_some_and(|s| s == secret);
    let valid =
        matches(&client_id, &secret) || matches(&form_decode(&client_id), &form_decode(&secret));
    let recorded = RecordedAuth::Basic {
        client_id: client_id.clone(),
        valid,
    };
    (recorded, valid.then_some(client_id))
}

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": error, "error_description": description}),
    )
    .header("cache-control", "no-store")
    .no_envelope()
}

pub(super) fn invalid_client() -> Reply {
    oauth_error(401, "invalid_client", "Invalid client credentials.")
        .header("www-authenticate", format!("Basic realm=\"{REALM}\""))
}

/// Processes `POST /api/oauth/token` for an authenticated client.
pub(super) fn issue_token(
    state: &mut State,
    client_id: &str,
    content_type: &str,
    body: &[u8],
) -> Reply {
    let form_type = content_type.split(';').next().is_some_and(|t| {
        t.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !form_type {
        return oauth_error(
            400,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded.",
        );
    }
    let grant = url::form_urlencoded::parse(body)
        .find(|(key, _)| key == "grant_type")
        .map(|(_, value)| value.into_owned());
    match grant.as_deref() {
        None => return oauth_error(400, "invalid_request", "Missing grant_type."),
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                400,
                "unsupported_grant_type",
                "Only grant_type=client_credentials is supported.",
            );
        }
    }
    let now = Instant::now();
    let live = state
        .tokens
        .values()
        .filter(|t| t.client_id == client_id && !t.revoked && now < t.expires)
        .count();
    if live >= MAX_LIVE_TOKENS {
        return oauth_error(
            403,
            "access_denied",
            "Too many live access tokens for this client.",
        );
    }
    let ttl = state.token_ttl;
    let token = random_hex(32);
    state.tokens.insert(
        token.clone(),
        Token {
            client_id: client_id.to_owned(),
            expires: now + ttl,
            revoked: false,
        },
    );
    let expires_in = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    Reply::json(
        200,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}),
    )
    .header("cache-control", "no-store")
    .no_envelope()
}

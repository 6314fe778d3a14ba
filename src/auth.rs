//! OAuth 2.0 client credentials against the Microsoft identity platform
//! (v2.0 endpoint), with a token cache and an actionable message for every
//! error code users typically hit.

use crate::capabilities::Signer;
use crate::config::{CollectorConfig, Secret};
use crate::error::{Error, Result};
use crate::http::{HttpClient, Method, Request, form_encode};
use crate::telemetry;
use serde::Deserialize;

/// Refresh this long before `expires_in` runs out.
const EXPIRY_MARGIN_SECS: i64 = 5 * 60;

/// Obtains and caches app-only access tokens.
pub struct TokenSource {
    token_url: String,
    client_id: String,
    credential: Credential,
    scope: String,
    /// Signs the client assertion when the credential is a certificate.
    signer: Signer,
    cached: Option<(String, i64)>,
}

/// How the app proves who it is.
enum Credential {
    Secret(Secret),
    /// A JWT signed by the host with the client certificate (RFC 7523).
    HostSignedAssertion,
}

/// How long a client assertion is valid; it is used at once.
const ASSERTION_LIFETIME_SECS: i64 = 10 * 60;

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

impl TokenSource {
    pub fn new(config: &CollectorConfig, signer: Signer) -> TokenSource {
        let credential = match &config.client_secret {
            Some(secret) => {
                let raw = secret.expose();
                let trimmed = raw.trim();
                if trimmed.len() != raw.len() {
                    telemetry::warn(
                        "client_secret has leading or trailing whitespace, which was removed; check how it was pasted",
                        &[],
                    );
                }
                Credential::Secret(Secret::new(trimmed))
            }
            None => Credential::HostSignedAssertion,
        };
        TokenSource {
            token_url: format!("{}/{}/oauth2/v2.0/token", config.login_endpoint, config.tenant_id),
            client_id: config.client_id.clone(),
            credential,
            scope: config.scope(),
            signer,
            cached: None,
        }
    }

    /// A valid token, from the cache when it has more than the margin left.
    pub fn token(&mut self, http: &mut dyn HttpClient, now_secs: i64) -> Result<String> {
        if let Some((token, expires_at)) = &self.cached
            && now_secs < *expires_at - EXPIRY_MARGIN_SECS
        {
            return Ok(token.clone());
        }
        self.refresh(http, now_secs)
    }

    /// Forgets the cached token, after Graph answered 401.
    pub fn invalidate(&mut self) {
        self.cached = None;
    }

    fn refresh(&mut self, http: &mut dyn HttpClient, now_secs: i64) -> Result<String> {
        let proof = match &self.credential {
            Credential::Secret(secret) => format!("client_secret={}", form_encode(secret.expose())),
            Credential::HostSignedAssertion => {
                let claims = serde_json::json!({
                    "aud": self.token_url, "iss": self.client_id, "sub": self.client_id,
                    "iat": now_secs, "nbf": now_secs, "exp": now_secs + ASSERTION_LIFETIME_SECS,
                });
                let jwt = (self.signer)(&claims.to_string())
                    .map_err(|e| Error::Config(format!("the host could not sign the client assertion: {e}")))?;
                format!(
                    "client_assertion_type={}&client_assertion={}",
                    form_encode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    form_encode(&jwt)
                )
            }
        };
        let body = format!(
            "client_id={}&scope={}&{proof}&grant_type=client_credentials",
            form_encode(&self.client_id),
            form_encode(&self.scope),
        );
        let response = http
            .send(Request {
                method: Method::Post,
                url: self.token_url.clone(),
                headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
                body: body.into_bytes(),
            })
            .map_err(|e| e.into_error(format_args!("could not reach the token endpoint {}", self.token_url)))?;
        telemetry::counter("token_requests_total", &[("status", &response.status.to_string())], 1);
        if response.status == 200 {
            let parsed: TokenResponse = serde_json::from_slice(&response.body)
                .map_err(|e| Error::Fatal(format!("the token endpoint answered 200 with a body that is not a token: {e}")))?;
            // `expires_in` is a number, or a numeric string on some older endpoints.
            let lifetime = match parsed.expires_in {
                Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(3599),
                Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3599),
                _ => 3599,
            };
            self.cached = Some((parsed.access_token.clone(), now_secs + lifetime));
            return Ok(parsed.access_token);
        }
        if response.status == 429 || response.status >= 500 {
            return Err(Error::Transient(format!(
                "the token endpoint answered {}; will retry",
                response.status
            )));
        }
        let err: TokenError = serde_json::from_slice(&response.body).unwrap_or_default();
        Err(explain_token_error(
            &err.error,
            &err.error_description,
            &err.error_codes,
            response.status,
        ))
    }
}

/// What each identity-platform error code means, and what to do about it.
const AADSTS_ADVICE: &[(u64, &str)] = &[
    (
        700027,
        "the client assertion was refused: the certificate in `client_certificate_file` is not one of the app's certificates, or its signature does not match. Upload the certificate (the .crt/.pem, not the key) under App registrations > your app > Certificates & secrets > Certificates, and check that `client_private_key_file` is its key",
    ),
    (
        700024,
        "the client assertion is outside its valid time range: this machine's clock is probably wrong; synchronise it (NTP)",
    ),
    (
        700023,
        "the client assertion's audience is wrong: check `cloud`/`login_endpoint` and `tenant_id`",
    ),
    (
        7000215,
        "the client secret is wrong. Most often the secret's ID was pasted instead of its Value. In the Azure portal open App registrations > your app > Certificates & secrets; the Value is shown only right after a secret is created, so create a new secret if needed and copy its Value",
    ),
    (
        7000222,
        "the client secret has expired. Create a new one under App registrations > your app > Certificates & secrets, and put its Value into the config",
    ),
    (
        7000218,
        "the request carried no client secret. If `client_secret` comes from an environment variable, check that the variable is set and not empty",
    ),
    (
        700016,
        "no application with this client_id exists in this tenant. Check `client_id` (Application (client) ID on the app's Overview page) and `tenant_id` (Directory (tenant) ID), and that `cloud`/`login_endpoint` matches the tenant's cloud. A multi-tenant app must be consented in this tenant first",
    ),
    (
        7000112,
        "the application is disabled. Enable it under Enterprise applications > your app > Properties",
    ),
    (
        1002012,
        "the requested scope is invalid; it must be `<graph host>/.default`. Check `graph_endpoint`",
    ),
    (
        70011,
        "the requested scope is invalid; it must be `<graph host>/.default`. Check `graph_endpoint`",
    ),
    (28000, "the scope names more than one resource. Check `graph_endpoint`"),
    (700022, "the scope names more than one resource. Check `graph_endpoint`"),
    (
        90002,
        "the tenant was not found. Check `tenant_id`, and that the tenant is in the configured `cloud` (or the cloud `login_endpoint` points at)",
    ),
    (
        90038,
        "this tenant belongs to a national cloud; set `cloud` to `gcc-high` or `dod` (or `login_endpoint` and `graph_endpoint` to that cloud's hosts)",
    ),
    (
        500011,
        "the resource (Graph host) was not found in this tenant; `cloud` (or `graph_endpoint`) probably names the wrong cloud",
    ),
    (
        7000214,
        "the certificate used for the client assertion has been revoked; upload a new one",
    ),
    (
        900023,
        "`tenant_id` is malformed; use the Directory (tenant) ID GUID or a verified domain",
    ),
    (
        90055,
        "too many token requests; tokens are cached, so another process may be using the same app",
    ),
];

/// Turns a token-endpoint error into an actionable [`Error`].
pub fn explain_token_error(error: &str, description: &str, codes: &[u64], status: u16) -> Error {
    // The first line of the description holds "AADSTSnnnn: text"; the rest is trace noise.
    let summary = description.lines().next().unwrap_or("").trim();
    for code in codes {
        if let Some((_, advice)) = AADSTS_ADVICE.iter().find(|(c, _)| c == code) {
            let what = format!("AADSTS{code}: {advice} (the identity platform said: {summary})");
            return match code {
                90055 => Error::Throttled {
                    retry_after_ms: 60_000,
                    message: what,
                },
                _ => Error::Auth(what),
            };
        }
    }
    let advice = match error {
        "invalid_client" => {
            "the client id, the secret or the tenant id is wrong. A secret's Value is shown only when it is created, so it may need regenerating"
        }
        "unauthorized_client" => {
            "the client id and the secret belong to different applications, or the app is not registered in this tenant"
        }
        "invalid_request" => "the request was refused; check `tenant_id` and the endpoints",
        "invalid_scope" => "the scope is invalid; check `graph_endpoint`",
        _ => "the token request failed",
    };
    Error::Auth(format!(
        "{advice} (HTTP {status}, {}: {})",
        if error.is_empty() { "no error code" } else { error },
        if summary.is_empty() { "no description" } else { summary }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::no_signer;
    use crate::http::fake::Scripted;

    fn config() -> CollectorConfig {
        CollectorConfig::from_json(
            r#"{"tenant_id":"tid","client_id":"cid","client_secret":"  s&cret=1 \n","login_endpoint":"http://127.0.0.1:1"}"#,
        )
        .unwrap()
    }

    #[test]
    fn requests_a_token_and_caches_it_until_the_margin() {
        let mut http = Scripted::default()
            .reply(200, r#"{"token_type":"Bearer","expires_in":3599,"access_token":"A"}"#)
            .reply(200, r#"{"token_type":"Bearer","expires_in":"3599","access_token":"B"}"#);
        let mut tokens = TokenSource::new(&config(), no_signer());
        assert_eq!(tokens.token(&mut http, 1000).unwrap(), "A");
        assert_eq!(tokens.token(&mut http, 1000 + 3599 - 301).unwrap(), "A");
        assert_eq!(http.sent.len(), 1);
        assert_eq!(tokens.token(&mut http, 1000 + 3599 - 299).unwrap(), "B");
        let sent = &http.sent[0];
        assert_eq!(sent.url, "http://127.0.0.1:1/tid/oauth2/v2.0/token");
        let body = String::from_utf8(sent.body.clone()).unwrap();
        // Whitespace around the secret is trimmed, and reserved characters are encoded.
        assert!(body.contains("client_secret=s%26cret%3D1&"), "{body}");
        assert!(body.contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"), "{body}");
        assert!(body.contains("grant_type=client_credentials"));
    }

    #[test]
    fn a_certificate_credential_sends_the_assertion_the_host_signed_and_no_secret() {
        let config = CollectorConfig::from_json(
            r#"{"tenant_id":"tid","client_id":"cid","client_assertion":"host","login_endpoint":"http://127.0.0.1:1"}"#,
        )
        .unwrap();
        let seen = std::rc::Rc::new(std::cell::RefCell::new(String::new()));
        let log = seen.clone();
        let signer: Signer = Box::new(move |claims| {
            *log.borrow_mut() = claims.to_string();
            Ok("h.c.s".into())
        });
        let mut http = Scripted::default().reply(200, r#"{"token_type":"Bearer","expires_in":3599,"access_token":"A"}"#);
        let mut tokens = TokenSource::new(&config, signer);
        assert_eq!(tokens.token(&mut http, 1000).unwrap(), "A");
        let claims: serde_json::Value = serde_json::from_str(&seen.borrow()).unwrap();
        assert_eq!(claims["aud"], "http://127.0.0.1:1/tid/oauth2/v2.0/token");
        assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("cid"), Some("cid")));
        assert_eq!((claims["nbf"].as_i64(), claims["exp"].as_i64()), (Some(1000), Some(1600)));
        let body = String::from_utf8(http.sent[0].body.clone()).unwrap();
        assert!(body.contains("client_assertion=h.c.s&"), "{body}");
        assert!(
            body.contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"),
            "{body}"
        );
        assert!(!body.contains("client_secret"), "{body}");

        // A host without a certificate: a configuration error that says so.
        let e = TokenSource::new(&config, no_signer())
            .token(&mut Scripted::default(), 1000)
            .unwrap_err();
        assert!(matches!(e, Error::Config(ref m) if m.contains("no client certificate")), "{e}");
    }

    #[test]
    fn a_credential_is_required_and_only_one() {
        let e = CollectorConfig::from_json(r#"{"tenant_id":"t","client_id":"c"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no credential"), "{e}");
        let both = r#"{"tenant_id":"t","client_id":"c","client_secret":"s","client_assertion":"host"}"#;
        let e = CollectorConfig::from_json(both).unwrap_err().to_string();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn each_known_code_gets_its_advice() {
        for (code, advice) in AADSTS_ADVICE {
            let e = explain_token_error("invalid_client", &format!("AADSTS{code}: x.\r\nTrace ID: 1"), &[*code], 401);
            let text = e.to_string();
            assert!(text.contains(&format!("AADSTS{code}")) && text.contains(advice), "{text}");
            assert!(!text.contains("Trace ID"), "{text}");
        }
        let secret_id = explain_token_error("invalid_client", "AADSTS7000215: Invalid client secret provided.", &[7000215], 401);
        assert!(matches!(secret_id, Error::Auth(ref m) if m.contains("ID was pasted instead of its Value")));
    }

    #[test]
    fn refusals_are_auth_errors_and_outages_are_transient() {
        let mut http = Scripted::default()
            .reply(
                401,
                r#"{"error":"invalid_client","error_description":"AADSTS7000222: expired","error_codes":[7000222]}"#,
            )
            .reply(503, "busy");
        let mut tokens = TokenSource::new(&config(), no_signer());
        let e = tokens.token(&mut http, 0).unwrap_err();
        assert!(matches!(e, Error::Auth(ref m) if m.contains("expired")), "{e}");
        assert!(!e.to_string().contains("s&cret"));
        assert!(matches!(tokens.token(&mut http, 0).unwrap_err(), Error::Transient(_)));
    }
}

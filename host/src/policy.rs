//! The network policy: which origins a component may reach, enforced on every
//! outgoing `wasi:http` request.
//!
//! A component names the origins it needs in `source-info`, derived from the
//! user's configuration. The host accepts `https://` origins, and `http://`
//! origins only on loopback addresses; every request to anything else is
//! refused with `HttpRequestDenied` and a log line naming the destination.

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

/// Upper bounds for a component's HTTP timeouts; Graph itself gives up on a
/// query after 3 minutes.
const MAX_CONNECT: Duration = Duration::from_secs(60);
const MAX_FIRST_BYTE: Duration = Duration::from_secs(300);
const MAX_BETWEEN_BYTES: Duration = Duration::from_secs(120);

fn clamp(requested: Option<Duration>, max: Duration) -> Option<Duration> {
    Some(requested.map_or(max, |d| d.min(max)))
}

/// The `wasi:http` hooks that enforce the allow-list.
pub struct Policy {
    pub allow: AllowList,
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
        let options = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: clamp(options.connect_timeout, MAX_CONNECT),
            first_byte_timeout: clamp(options.first_byte_timeout, MAX_FIRST_BYTE),
            between_bytes_timeout: clamp(options.between_bytes_timeout, MAX_BETWEEN_BYTES),
        };
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
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

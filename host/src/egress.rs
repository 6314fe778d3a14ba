//! How the component's requests leave the machine, once the network policy
//! has allowed them: through `reqwest`, so that they take the user's proxy
//! and trust the machine's certificate store (plus `ca_file`, for
//! TLS-inspecting proxies).
//!
//! - Proxy: the `proxy` setting, else `HTTPS_PROXY` / `HTTP_PROXY` /
//!   `ALL_PROXY` from the environment; `NO_PROXY` lists the hosts that go
//!   direct either way. Loopback endpoints (the demo, tests, a local
//!   stand-in) always go direct.
//! - Trust: the operating system's store and the Mozilla roots, plus every
//!   certificate in `ca_file`. Verification is never turned off.

use bytes::Bytes;
use http_body_util::BodyExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// The user's settings for outbound connections.
#[derive(Clone, Default)]
pub struct EgressConfig {
    /// The proxy for every non-loopback request, such as
    /// `http://proxy.corp:3128` (credentials in the URL are allowed and never
    /// logged). Unset: the `HTTPS_PROXY` family of environment variables.
    pub proxy: Option<String>,
    /// A PEM bundle of extra trusted certificates, for a TLS-inspecting proxy.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for EgressConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressConfig")
            .field("proxy", &self.proxy.as_deref().map(redact_userinfo))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// `scheme://user:password@host` → `scheme://***@host`, for messages.
pub fn redact_userinfo(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

/// The HTTP clients behind the network policy, built on first use.
#[derive(Clone, Default)]
pub struct Egress {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    config: EgressConfig,
    roots: Vec<reqwest::Certificate>,
    proxied: OnceLock<Result<reqwest::Client, String>>,
    direct: OnceLock<Result<reqwest::Client, String>>,
}

/// Upper bounds for connection set-up and for the gap between two reads;
/// the time to the first byte is bounded per request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
const READ_TIMEOUT: Duration = Duration::from_secs(120);

impl Egress {
    /// Checks the settings: the proxy URL parses and `ca_file` holds PEM
    /// certificates. Errors name the setting to fix.
    pub fn new(config: EgressConfig) -> anyhow::Result<Egress> {
        use anyhow::Context;
        if let Some(proxy) = &config.proxy {
            reqwest::Proxy::all(proxy.as_str()).map_err(|_| {
                anyhow::anyhow!(
                    "`proxy` {} is not a proxy URL; write it as http://host:port",
                    redact_userinfo(proxy)
                )
            })?;
        }
        let mut roots = Vec::new();
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading `ca_file` {}", path.display()))?;
            roots = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|certs| !certs.is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "`ca_file` {} holds no PEM certificate; it must contain one or more \
                         -----BEGIN CERTIFICATE----- blocks",
                        path.display()
                    )
                })?;
        }
        Ok(Egress {
            inner: Arc::new(Inner {
                config,
                roots,
                ..Inner::default()
            }),
        })
    }

    fn client(&self, loopback: bool) -> Result<reqwest::Client, Error> {
        let inner = &*self.inner;
        let cell = if loopback { &inner.direct } else { &inner.proxied };
        cell.get_or_init(|| inner.build(!loopback))
            .clone()
            .map_err(|e| Error::InternalError(Some(e)))
    }

    /// Sends a request the policy allowed. The request body is small (a query
    /// or a token form) and is read whole; the response streams.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        loopback: bool,
        first_byte_timeout: Duration,
    ) -> Result<http::Response<WasiBody>, Error> {
        let client = self.client(loopback)?;
        let (parts, body) = request.into_parts();
        let body: Bytes = body.collect().await?.to_bytes();
        let url = parts.uri.to_string();
        let mut headers = parts.headers;
        headers.remove(http::header::HOST);
        let send = client.request(parts.method, url.as_str()).headers(headers).body(body).send();
        let response = match tokio::time::timeout(first_byte_timeout, send).await {
            Err(_) => return Err(Error::ConnectionReadTimeout),
            Ok(Err(e)) => return Err(self.describe(&e, &url)),
            Ok(Ok(response)) => response,
        };
        // The guest reads the body outside any async runtime, where reqwest's
        // read timer cannot run: a task on this runtime reads it and hands
        // the frames over a small channel (so a slow reader slows the
        // download instead of filling memory).
        let response: http::Response<reqwest::Body> = response.into();
        let (parts, mut body) = response.into_parts();
        let (frames, receiver) = tokio::sync::mpsc::channel(4);
        let egress = self.clone();
        tokio::spawn(async move {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| egress.describe(&e, &url));
                let last = frame.is_err();
                if frames.send(frame).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(http::Response::from_parts(parts, ChannelBody(receiver).boxed_unsync()))
    }

    /// Turns a `reqwest` error into the `wasi:http` error code the component
    /// sees, and logs the whole cause for the user.
    fn describe(&self, e: &reqwest::Error, url: &str) -> Error {
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            chain.push_str(": ");
            chain.push_str(&cause.to_string());
            source = cause.source();
        }
        let url = redact_userinfo(url);
        let code = if e.is_timeout() {
            if e.is_connect() {
                Error::ConnectionTimeout
            } else {
                Error::ConnectionReadTimeout
            }
        } else if chain.contains("certificate") || chain.contains("UnknownIssuer") {
            Error::TlsCertificateError
        } else if chain.contains("dns error") || chain.contains("failed to lookup address") {
            Error::DnsError {
                rcode: None,
                info_code: None,
            }
        } else if e.is_connect() && chain.contains("refused") {
            Error::ConnectionRefused
        } else {
            Error::InternalError(Some(chain.clone()))
        };
        let hint = match code {
            Error::TlsCertificateError => {
                "; the certificate is not trusted by this machine. Behind a TLS-inspecting proxy, \
                 set `ca_file` to the proxy's CA bundle"
            }
            _ if chain.contains("tunnel") || chain.contains("proxy") => "; check `proxy` (or HTTPS_PROXY) and the proxy's logs",
            _ => "",
        };
        tracing::warn!(url = %url, cause = %chain, "a request from the component failed{hint}");
        code
    }
}

/// A response body fed by the task that reads the real one.
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<hyper::body::Frame<Bytes>, Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Error>>> {
        self.0.poll_recv(cx)
    }
}

impl Inner {
    fn build(&self, proxied: bool) -> Result<reqwest::Client, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        for cert in &self.roots {
            builder = builder.add_root_certificate(cert.clone());
        }
        if !proxied {
            builder = builder.no_proxy();
        } else if let Some(url) = &self.config.proxy {
            let proxy = reqwest::Proxy::all(url.as_str())
                .map_err(|_| format!("`proxy` {} is not a proxy URL", redact_userinfo(url)))?
                .no_proxy(reqwest::NoProxy::from_env());
            builder = builder.proxy(proxy);
        }
        builder.build().map_err(|e| format!("the HTTP client could not be built: {e}"))
    }
}

/// The time to the first byte a request may wait: what the component asked
/// for, clamped, and at most `max`.
pub fn first_byte_timeout(options: Option<&RequestOptions>, max: Duration) -> Duration {
    options.and_then(|o| o.first_byte_timeout).map_or(max, |d| d.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_credentials_never_show() {
        assert_eq!(redact_userinfo("http://user:pw@proxy:3128"), "http://***@proxy:3128");
        assert_eq!(redact_userinfo("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(redact_userinfo("https://h/p?a=b@c"), "https://h/p?a=b@c");
        let config = EgressConfig {
            proxy: Some("http://user:hunter2@proxy:3128".into()),
            ..EgressConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn bad_settings_name_what_to_fix() {
        let err = Egress::new(EgressConfig {
            proxy: Some("not a url".into()),
            ..EgressConfig::default()
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("`proxy`"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let err = Egress::new(EgressConfig {
            ca_file: Some(path),
            ..EgressConfig::default()
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("holds no PEM certificate"), "{err}");
        let err = Egress::new(EgressConfig {
            ca_file: Some(dir.path().join("missing.pem")),
            ..EgressConfig::default()
        })
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("reading `ca_file`"), "{err:#}");
    }
}

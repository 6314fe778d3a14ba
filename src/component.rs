//! The WebAssembly side: WIT bindings, the exported `source` interface, the
//! host's log and metric imports, and an [`HttpClient`] over `wasi:http`.

use crate::collector::Collector;
use crate::error::Error;
use crate::http::{HttpClient, Method, Request, Response, TransportError};
use crate::telemetry::Level;
use crate::time::Ticks;
use std::cell::RefCell;

wit_bindgen::generate!({
    world: "collector",
    path: "wit",
    with: {
        "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
        "wasi:http/types@0.2.12": wasip2::http::types,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
    },
});

use defender_ocsf::collector::credentials as wit_credentials;
use defender_ocsf::collector::host as wit_host;
use defender_ocsf::collector::types as wit;
use exports::defender_ocsf::collector::convert::{Converted, Guest as ConvertGuest, StreamMapped, TableCount};
use exports::defender_ocsf::collector::source::Guest;

thread_local! {
    static COLLECTOR: RefCell<Option<Collector>> = const { RefCell::new(None) };
}

struct Component;

impl ConvertGuest for Component {
    fn map_results(table: String, options: String, results: Vec<u8>) -> Result<Converted, wit::Error> {
        let out = crate::convert::convert(&table, &options, results).map_err(to_wit)?;
        Ok(Converted {
            events: out.events,
            count: out.count,
            rejected: out.rejected,
        })
    }

    fn map_stream(options: String, message: Vec<u8>) -> Result<StreamMapped, String> {
        let out = crate::convert::convert_stream(&options, &message)?;
        Ok(StreamMapped {
            events: out.events,
            count: out.count,
            rejected: out.rejected,
            tables: out
                .tables
                .into_iter()
                .map(|t| TableCount {
                    table: t.table,
                    rows: t.rows,
                    errors: t.errors,
                })
                .collect(),
            unknown_categories: out.unknown_categories,
        })
    }
}

impl Guest for Component {
    fn init(config: String, last_checkpoint: Option<String>) -> Result<wit::SourceInfo, wit::Error> {
        let (collector, info) = Collector::new(&config, last_checkpoint.as_deref(), Ticks::now()).map_err(to_wit)?;
        COLLECTOR.with(|c| *c.borrow_mut() = Some(collector));
        Ok(wit::SourceInfo {
            name: info.name,
            version: info.version,
            allowed_origins: info.allowed_origins,
        })
    }

    fn poll() -> Result<wit::Batch, wit::Error> {
        COLLECTOR.with(|c| {
            let mut guard = c.borrow_mut();
            let collector = guard
                .as_mut()
                .ok_or_else(|| wit::Error::Fatal("poll was called before a successful init".into()))?;
            let batch = collector.poll(&mut WasiHttp, Ticks::now()).map_err(to_wit)?;
            Ok(wit::Batch {
                events: batch.events,
                count: batch.count,
                checkpoint: batch.checkpoint,
                next_poll_ms: batch.next_poll_ms,
            })
        })
    }

    fn check() -> Vec<wit::CheckStep> {
        COLLECTOR.with(|c| match c.borrow_mut().as_mut() {
            None => vec![wit::CheckStep {
                name: "configuration".into(),
                ok: false,
                detail: "check was called before a successful init".into(),
            }],
            Some(collector) => collector
                .check(&mut WasiHttp, Ticks::now())
                .into_iter()
                .map(|s| wit::CheckStep {
                    name: s.name,
                    ok: s.ok,
                    detail: s.detail,
                })
                .collect(),
        })
    }
}

export!(Component);

fn to_wit(e: Error) -> wit::Error {
    match e {
        Error::Config(m) => wit::Error::Config(m),
        Error::Auth(m) => wit::Error::Auth(m),
        Error::Permission(m) => wit::Error::Permission(m),
        Error::Throttled { retry_after_ms, message } => wit::Error::Throttled(wit::Throttle { retry_after_ms, message }),
        Error::Transient(m) => wit::Error::Transient(m),
        Error::Fatal(m) => wit::Error::Fatal(m),
    }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let level = match level {
        Level::Debug => wit_host::Level::Debug,
        Level::Info => wit_host::Level::Info,
        Level::Warn => wit_host::Level::Warn,
        Level::Error => wit_host::Level::Error,
    };
    wit_host::log(level, message, &pairs(fields));
}

pub fn counter(name: &str, labels: &[(&str, &str)], value: u64) {
    wit_host::counter_add(name, &pairs(labels), value);
}

pub fn gauge(name: &str, labels: &[(&str, &str)], value: f64) {
    wit_host::gauge_set(name, &pairs(labels), value);
}

/// A blocking HTTP client over `wasi:http/outgoing-handler`.
struct WasiHttp;

/// Longest a request may take to connect, and to deliver its first byte;
/// Graph gives up on a query after 3 minutes.
const CONNECT_TIMEOUT_NS: u64 = 30_000_000_000;
const FIRST_BYTE_TIMEOUT_NS: u64 = 200_000_000_000;
const BETWEEN_BYTES_TIMEOUT_NS: u64 = 60_000_000_000;

impl HttpClient for WasiHttp {
    fn send(&mut self, request: Request) -> Result<Response, TransportError> {
        use wasip2::http::outgoing_handler;
        use wasip2::http::types::Method as WasiMethod;
        use wasip2::http::types::{Fields, IncomingBody, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};
        use wasip2::io::streams::StreamError;

        let err = |what: &str, e: &dyn std::fmt::Debug| TransportError::new(format!("{what}: {e:?}"));
        let (scheme, rest) = request
            .url
            .split_once("://")
            .ok_or_else(|| TransportError::new(format!("not an absolute URL: {}", request.url)))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let scheme = match scheme {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => return Err(TransportError::new(format!("unsupported URL scheme `{other}`"))),
        };

        let mut headers: Vec<(String, Vec<u8>)> = request.headers.iter().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect();
        headers.push(("content-length".into(), request.body.len().to_string().into_bytes()));
        let fields = Fields::from_list(&headers).map_err(|e| err("invalid header", &e))?;
        let outgoing = OutgoingRequest::new(fields);
        let method = match request.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
        };
        outgoing.set_method(&method).map_err(|_| TransportError::new("invalid method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|_| TransportError::new("invalid scheme"))?;
        outgoing
            .set_authority(Some(authority))
            .map_err(|_| TransportError::new(format!("invalid host `{authority}`")))?;
        outgoing
            .set_path_with_query(Some(path))
            .map_err(|_| TransportError::new(format!("invalid path `{path}`")))?;
        let body = outgoing.body().map_err(|_| TransportError::new("request body already taken"))?;

        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT_NS));
        let _ = options.set_first_byte_timeout(Some(FIRST_BYTE_TIMEOUT_NS));
        let _ = options.set_between_bytes_timeout(Some(BETWEEN_BYTES_TIMEOUT_NS));

        // Send first, then stream the body: the host buffers only a chunk.
        // Every wait below races a timer, so no request can hang the
        // collector, whatever happens on the other side.
        let pending = outgoing_handler::handle(outgoing, Some(options)).map_err(|e| transport_error(&e, &request.url))?;
        {
            let stream = body.write().map_err(|_| TransportError::new("request body stream unavailable"))?;
            write_all(&stream, &request.body, BETWEEN_BYTES_TIMEOUT_NS)
                .map_err(|e| TransportError::new(format!("sending the request to {}: {e}", request.url)))?;
        }
        // If the body could not be completed, the host aborts the request and
        // the response below carries the reason; a server that answered
        // early is answered by its response.
        let finished = OutgoingBody::finish(body, None);

        let response = loop {
            match pending.get() {
                Some(result) => break result,
                None => {
                    if !wait(&pending.subscribe(), FIRST_BYTE_TIMEOUT_NS) {
                        return Err(TransportError::new(format!(
                            "no answer from {} within {} s",
                            request.url,
                            FIRST_BYTE_TIMEOUT_NS / 1_000_000_000
                        )));
                    }
                }
            }
        };
        let response = response
            .map_err(|_| TransportError::new("the response was already taken"))?
            .map_err(|e| match &finished {
                Err(body_error) => {
                    let cause = transport_error(&e, &request.url);
                    TransportError {
                        message: format!(
                            "the request body to {} was cut short ({}), then: {}",
                            request.url,
                            transport_error(body_error, &request.url).message,
                            cause.message
                        ),
                        ..cause
                    }
                }
                Ok(()) => transport_error(&e, &request.url),
            })?;

        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|_| TransportError::new("response body unavailable"))?;
        // Sized once from content-length (Graph answers are at most 50 MB):
        // growing by doubling would leave a larger high-water mark behind.
        let length = headers_length(&headers).unwrap_or(0).min(64 << 20);
        let mut body = Vec::with_capacity(length);
        {
            let stream = incoming
                .stream()
                .map_err(|_| TransportError::new("response body stream unavailable"))?;
            loop {
                match stream.read(256 * 1024) {
                    Ok(chunk) if chunk.is_empty() => {
                        if !wait(&stream.subscribe(), BETWEEN_BYTES_TIMEOUT_NS) {
                            return Err(TransportError::new(format!(
                                "the response from {} stalled for {} s",
                                request.url,
                                BETWEEN_BYTES_TIMEOUT_NS / 1_000_000_000
                            )));
                        }
                    }
                    Ok(chunk) => body.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(TransportError::new(format!(
                            "reading the response from {} failed: {}",
                            request.url,
                            e.to_debug_string()
                        )));
                    }
                }
            }
        }
        drop(IncomingBody::finish(incoming));
        Ok(Response { status, headers, body })
    }
}

/// The `content-length` of a response, when it has a readable one.
fn headers_length(headers: &[(String, String)]) -> Option<usize> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Waits until `pollable` is ready or `timeout_ns` pass; true when ready.
fn wait(pollable: &wasip2::io::poll::Pollable, timeout_ns: u64) -> bool {
    let timer = wasip2::clocks::monotonic_clock::subscribe_duration(timeout_ns);
    wasip2::io::poll::poll(&[pollable, &timer]).contains(&0)
}

/// Writes all of `data` and flushes, waiting at most `timeout_ns` for room each time.
///
/// A stream that reports `Closed` is not an error here: the host's HTTP
/// client drops the body once it has all `content-length` bytes, and when the
/// server stops reading early, the response (or its error code) says why.
/// Either way the caller goes on to read the response, which is the outcome.
fn write_all(stream: &wasip2::io::streams::OutputStream, mut data: &[u8], timeout_ns: u64) -> Result<(), String> {
    use wasip2::io::streams::StreamError;
    let err = |e: StreamError| format!("{e:?}");
    while !data.is_empty() {
        let permit = match stream.check_write() {
            Ok(permit) => permit,
            Err(StreamError::Closed) => return Ok(()),
            Err(e) => return Err(err(e)),
        };
        if permit == 0 {
            if !wait(&stream.subscribe(), timeout_ns) {
                return Err(format!("the connection took no data for {} s", timeout_ns / 1_000_000_000));
            }
            continue;
        }
        let n = (permit as usize).min(data.len());
        match stream.write(&data[..n]) {
            Ok(()) => data = &data[n..],
            Err(StreamError::Closed) => return Ok(()),
            Err(e) => return Err(err(e)),
        }
    }
    match stream.flush() {
        Ok(()) => {}
        Err(StreamError::Closed) => return Ok(()),
        Err(e) => return Err(err(e)),
    }
    loop {
        match stream.check_write() {
            Ok(0) => {
                if !wait(&stream.subscribe(), timeout_ns) {
                    return Err(format!("flushing the request took more than {} s", timeout_ns / 1_000_000_000));
                }
            }
            Ok(_) | Err(StreamError::Closed) => return Ok(()),
            Err(e) => return Err(err(e)),
        }
    }
}

fn transport_error(e: &wasip2::http::types::ErrorCode, url: &str) -> TransportError {
    use wasip2::http::types::ErrorCode;
    match e {
        ErrorCode::HttpRequestDenied => TransportError::lasting(format!(
            "the host refused the request to {url}: it is not one of the configured endpoints"
        )),
        ErrorCode::TlsCertificateError => TransportError::lasting(format!(
            "the TLS certificate of {url} was not accepted: this machine does not trust it. Behind a \
             TLS-inspecting proxy, set `ca_file` to the proxy's CA bundle"
        )),
        ErrorCode::ConnectionRefused => TransportError::new(format!("connection to {url} refused")),
        ErrorCode::ConnectionTimeout => TransportError::new(format!("connecting to {url} timed out")),
        ErrorCode::InternalError(Some(detail)) => TransportError::new(format!("request to {url} failed: {detail}")),
        other => TransportError::new(format!("request to {url} failed: {other:?}")),
    }
}

/// Has the host sign a client assertion with the certificate it holds.
pub fn sign_client_assertion(claims: &str) -> Result<String, String> {
    wit_credentials::sign_client_assertion(claims)
}

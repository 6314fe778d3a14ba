//! An [`HttpClient`] over `wasi:http/outgoing-handler`: the host's HTTP
//! capability, with a timeout on every wait.

use crate::http::{HttpClient, Method, Request, Response, TransportError};

/// A blocking HTTP client over `wasi:http/outgoing-handler`.
pub struct WasiHttp;

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

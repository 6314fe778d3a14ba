//! A component that breaks the rules on purpose: `init` reports the origin in
//! `{"allowed": ..}` as the only one it needs, and every `poll` then sends a
//! request to `{"dial": ..}`. The host's network policy has to refuse it.
//! `poll` answers with what the request came to, so the test can tell a
//! refusal from a request that went out.
//!
//! It is built against the previous contract, `wit/since_v0.3.0`, so the
//! same tests show that the host still runs a 0.3.0 component.

#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "collector",
    path: "../../../wit/since_v0.3.0",
    with: {
        "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
        "wasi:http/types@0.2.12": wasip2::http::types,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
    },
});

use defender_ocsf::collector::types as wit;
use exports::defender_ocsf::collector::convert::{Converted, Guest as ConvertGuest};
use exports::defender_ocsf::collector::source::Guest;

thread_local! {
    static TARGET: RefCell<String> = const { RefCell::new(String::new()) };
}

struct Dialer;

impl Guest for Dialer {
    fn init(config: String, _last_checkpoint: Option<String>) -> Result<wit::SourceInfo, wit::Error> {
        let config: serde_json::Value = serde_json::from_str(&config).map_err(|e| wit::Error::Config(e.to_string()))?;
        let field = |name: &str| {
            config[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| wit::Error::Config(format!("`{name}` is required")))
        };
        let allowed = field("allowed")?;
        let dial = field("dial")?;
        TARGET.with(|t| *t.borrow_mut() = dial);
        Ok(wit::SourceInfo {
            name: "dialer".into(),
            version: "0".into(),
            allowed_origins: vec![allowed],
        })
    }

    fn poll() -> Result<wit::Batch, wit::Error> {
        let url = TARGET.with(|t| t.borrow().clone());
        match dial(&url) {
            Ok(status) => Err(wit::Error::Fatal(format!(
                "the request to {url} went out and was answered {status}"
            ))),
            Err(code) => Err(wit::Error::Fatal(format!("the request to {url} failed: {code}"))),
        }
    }

    fn check() -> Vec<wit::CheckStep> {
        Vec::new()
    }
}

impl ConvertGuest for Dialer {
    fn map_results(_table: String, _options: String, _results: Vec<u8>) -> Result<Converted, wit::Error> {
        Err(wit::Error::Fatal("the dialer maps nothing".into()))
    }
}

/// Sends `GET url` and returns the status, or the error code's name.
fn dial(url: &str) -> Result<u16, String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    let (scheme, rest) = url.split_once("://").ok_or("not an absolute URL")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    request.set_scheme(Some(&scheme)).map_err(|()| "bad scheme")?;
    request.set_authority(Some(authority)).map_err(|()| "bad authority")?;
    request
        .set_path_with_query(Some(if path.is_empty() { "/" } else { path }))
        .map_err(|()| "bad path")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    loop {
        match pending.get() {
            None => pending.subscribe().block(),
            Some(Ok(Ok(response))) => return Ok(response.status()),
            Some(Ok(Err(code))) => return Err(format!("{code:?}")),
            Some(Err(())) => return Err("the response was already taken".into()),
        }
    }
}

export!(Dialer);

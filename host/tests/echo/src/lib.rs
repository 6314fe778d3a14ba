//! The smallest collector: `init` keeps the `message` setting, `poll` emits
//! it as one event and says the cycle is done; nothing else.

#![cfg(target_arch = "wasm32")]

#[cfg(not(feature = "contract-0-4"))]
wit_bindgen::generate!({ world: "collector", path: "../../../wit", generate_all });
#[cfg(feature = "contract-0-4")]
wit_bindgen::generate!({ world: "collector", path: "../../../wit/since_v0.4.0", generate_all });

use defender_ocsf::collector::types::{Batch, CheckStep, Error, SourceInfo};
use exports::defender_ocsf::collector::convert::{Converted, Guest as Convert, StreamMapped};
use exports::defender_ocsf::collector::source::Guest as Source;

static MESSAGE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

struct Echo;

impl Source for Echo {
    /// It has no secrets, credentials or instances, and reports no metric.
    #[cfg(not(feature = "contract-0-4"))]
    fn describe() -> exports::defender_ocsf::collector::source::Description {
        let none = Vec::new;
        exports::defender_ocsf::collector::source::Description {
            secret_keys: none(),
            credential_keys: none(),
            instance_key: None,
            host_signer: None,
            convert_options: none(),
            metrics: Vec::new(),
        }
    }

    fn init(config: String, _checkpoint: Option<String>) -> Result<SourceInfo, Error> {
        let start = config.find("\"message\":\"").ok_or(Error::Config("`message` is required".into()))? + 11;
        let text = &config[start..];
        *MESSAGE.lock().unwrap() = text[..text.find('"').unwrap_or(text.len())].to_string();
        Ok(SourceInfo {
            name: "echo".into(),
            version: "1".into(),
            allowed_origins: Vec::new(),
        })
    }

    fn poll() -> Result<Batch, Error> {
        let event = format!("{{\"message\":\"{}\"}}\n", MESSAGE.lock().unwrap());
        Ok(Batch {
            events: event.into_bytes(),
            count: 1,
            checkpoint: "{\"echoed\":1}".into(),
            next_poll_ms: 60_000,
        })
    }

    fn check() -> Vec<CheckStep> {
        vec![CheckStep {
            name: "echo".into(),
            ok: true,
            detail: "nothing to check".into(),
        }]
    }
}

impl Convert for Echo {
    fn map_results(_: String, _: String, _: Vec<u8>) -> Result<Converted, Error> {
        Err(Error::Config("echo maps nothing".into()))
    }

    fn map_stream(_: String, _: Vec<u8>) -> Result<StreamMapped, String> {
        Err("echo maps nothing".into())
    }
}

export!(Echo);

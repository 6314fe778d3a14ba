//! Certificate credentials: the host reads the client certificate and key
//! and signs client assertions (PS256, `x5t#S256`) for the component, which
//! never sees the key. The replay Graph checks each assertion as Entra ID
//! does: the certificate it names, the signature, and the claims.
//!
//! The key pairs in `fixtures/` exist only for these tests.

use base64::Engine as _;
use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};
use rustls_pki_types::pem::PemObject;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROWS: usize = 3;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The public key (PKCS#1 DER) of a PEM private key, and the `x5t#S256` of
/// a PEM certificate: what uploading the certificate tells Entra ID.
fn registration(key: &str, certificate: &str) -> (Vec<u8>, String) {
    let pem = std::fs::read(fixture(key)).unwrap();
    let key = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(&pem).unwrap();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(key.secret_pkcs8_der()).unwrap();
    let public_key = ring::signature::KeyPair::public_key(&pair).as_ref().to_vec();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&std::fs::read(fixture(certificate)).unwrap()).unwrap();
    let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, der.as_ref()));
    (public_key, thumbprint)
}

fn server() -> ReplayServer {
    let base = Utc::now() - Duration::minutes(30);
    let mut dataset = Dataset::default();
    let rows = (0..ROWS).map(|i| {
        json!({"Timestamp": (base + Duration::seconds(i as i64)).to_rfc3339(), "DeviceId": "d", "ReportId": i, "ProcessId": i, "InitiatingProcessId": 1})
            .as_object()
            .unwrap()
            .clone()
    });
    dataset.add("DeviceProcessEvents", rows).unwrap();
    let credentials = Credentials {
        tenant_id: "c-tenant".into(),
        client_id: "c-client".into(),
        // Not used: the app authenticates with its certificate.
        client_secret: "unused-secret".into(),
    };
    ReplayServer::start(dataset, credentials).unwrap()
}

fn run(server: &ReplayServer, dir: &Path, credential: &str) -> Output {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "tenant_id: c-tenant\nclient_id: c-client\n{credential}\nlogin_endpoint: {url}\ngraph_endpoint: {url}\n\
             tables: [DeviceProcessEvents]\nstart_time: {}\ndelay: 1m\nstate_dir: {}\n",
            (Utc::now() - Duration::hours(1)).to_rfc3339(),
            dir.join("state").display(),
            url = server.url(),
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--once", "--config"])
        .arg(&config)
        .output()
        .unwrap()
}

fn files(certificate: &str, key: Option<&str>) -> String {
    let mut text = format!("client_certificate_file: {}", fixture(certificate).display());
    if let Some(key) = key {
        text.push_str(&format!("\nclient_private_key_file: {}", fixture(key).display()));
    }
    text
}

/// A line from the middle of a key file: it must never be printed anywhere.
fn key_fragment(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap().lines().nth(5).unwrap().to_string()
}

#[test]
fn the_host_signs_an_assertion_the_identity_platform_accepts_and_the_key_never_shows() {
    let server = server();
    let (public_key, thumbprint) = registration("client.key", "client.crt");
    server.accept_certificate(public_key, thumbprint);
    for (name, credential) in [
        ("pkcs8", files("client.crt", Some("client.key"))),
        ("pkcs1", files("client.crt", Some("client-pkcs1.key"))),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&server, dir.path(), &credential);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), ROWS, "{name}: {stderr}");
        let fragment = key_fragment("client.key");
        let state: String = walk(&dir.path().join("state"));
        for (what, text) in [
            ("stdout", String::from_utf8_lossy(&out.stdout).to_string()),
            ("stderr", stderr.to_string()),
            ("state", state),
        ] {
            assert!(!text.contains(&fragment), "{name}: the key shows in {what}");
        }
    }
    assert!(server.token_requests() >= 2);
}

#[test]
fn a_certificate_the_app_does_not_have_is_refused_with_advice() {
    let server = server();
    // The app registration knows another certificate.
    let (public_key, _) = registration("other.key", "client.crt");
    server.accept_certificate(public_key, "not-this-thumbprint".into());
    let dir = tempfile::tempdir().unwrap();
    let out = run(&server, dir.path(), &files("client.crt", Some("client.key")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("AADSTS700027") && stderr.contains("Certificates & secrets > Certificates"),
        "{stderr}"
    );
}

#[test]
fn a_key_that_is_not_the_certificates_or_files_that_are_not_pem_are_named() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&server, dir.path(), &files("client.crt", Some("other.key")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("does not belong to the certificate"), "{stderr}");
    assert!(!stderr.contains(&key_fragment("other.key")));

    let out = run(&server, dir.path(), &files("client.key", Some("client.key")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
    assert!(!stderr.contains(&key_fragment("client.key")));

    // Only the certificate file, which holds no key.
    let out = run(&server, dir.path(), &files("client.crt", None));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds no PEM private key"), "{stderr}");

    let both = format!("{}\nclient_secret: s", files("client.crt", Some("client.key")));
    let out = run(&server, dir.path(), &both);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
    assert_eq!(server.token_requests(), 0, "nothing was sent for a broken credential");
}

#[test]
fn certificate_and_key_may_share_one_file() {
    let server = server();
    let (public_key, thumbprint) = registration("client.key", "client.crt");
    server.accept_certificate(public_key, thumbprint);
    let dir = tempfile::tempdir().unwrap();
    let combined = dir.path().join("client.pem");
    let text = std::fs::read_to_string(fixture("client.crt")).unwrap() + &std::fs::read_to_string(fixture("client.key")).unwrap();
    std::fs::write(&combined, text).unwrap();
    let out = run(&server, dir.path(), &format!("client_certificate_file: {}", combined.display()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), ROWS);
}

fn walk(dir: &Path) -> String {
    let mut text = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "cache") {
                    text.push_str(&walk(&path));
                }
            } else if let Ok(content) = std::fs::read(&path) {
                text.push_str(&String::from_utf8_lossy(&content));
            }
        }
    }
    text
}

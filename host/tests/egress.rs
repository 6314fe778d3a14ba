//! The way out: the component's requests to non-loopback Microsoft hosts go
//! through the configured proxy (or `HTTPS_PROXY`), with TLS verified against
//! the system store plus `ca_file`.
//!
//! The stand-ins: a CONNECT proxy (RFC 9110 §9.3.6) that records where it was
//! asked to go, a TLS front for `login.test` and `graph.test` with a
//! certificate from a test CA, and behind it the replay Graph. Nothing
//! resolves `*.test`, so a request that skipped the proxy cannot succeed.

use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const SECRET: &str = "egress-secret";
const ROWS: usize = 5;

fn replay() -> ReplayServer {
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
        tenant_id: "e-tenant".into(),
        client_id: "e-client".into(),
        client_secret: SECRET.into(),
    };
    ReplayServer::start(dataset, credentials).unwrap()
}

/// A TLS front for `login.test` and `graph.test` that relays the plain
/// stream to `upstream`. Returns its address and the test CA's PEM.
fn tls_front(upstream: SocketAddr) -> (SocketAddr, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "defender-ocsf test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["login.test".to_string(), "graph.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();

    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that rejects our certificate ends here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
    });
    (addr, ca.pem())
}

/// A CONNECT proxy that sends every tunnel to `target` and records the
/// authority each CONNECT asked for.
fn connect_proxy(target: SocketAddr) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap_or(0);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                        break;
                    }
                }
                let mut parts = request_line.split_whitespace();
                let (Some("CONNECT"), Some(authority)) = (parts.next(), parts.next()) else {
                    let _ = (&client).write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n");
                    return;
                };
                log.lock().unwrap().push(authority.to_string());
                let Ok(upstream) = TcpStream::connect(target) else { return };
                (&client).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
                let mut up_read = upstream.try_clone().unwrap();
                let mut down_write = client.try_clone().unwrap();
                let forward = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_read, &mut down_write);
                    let _ = down_write.shutdown(std::net::Shutdown::Write);
                });
                // Bytes the client sent after the CONNECT head are in the reader's buffer.
                let mut upstream_write = upstream;
                let _ = std::io::copy(&mut reader, &mut upstream_write);
                let _ = upstream_write.shutdown(std::net::Shutdown::Write);
                let _ = forward.join();
            });
        }
    });
    (url, seen)
}

struct Setup {
    _replay: ReplayServer,
    dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
    proxy: String,
    connects: Arc<Mutex<Vec<String>>>,
}

fn setup() -> Setup {
    let replay = replay();
    let upstream: SocketAddr = replay.url().trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
    let (front, ca_pem) = tls_front(upstream);
    let (proxy, connects) = connect_proxy(front);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("corp-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    Setup {
        _replay: replay,
        dir,
        ca_file,
        proxy,
        connects,
    }
}

fn run(setup: &Setup, name: &str, extra: &str, env: &[(&str, &str)]) -> Output {
    let config = setup.dir.path().join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            "tenant_id: e-tenant\nclient_id: e-client\nclient_secret: ${{EGRESS_SECRET}}\n\
             login_endpoint: https://login.test\ngraph_endpoint: https://graph.test\n\
             tables: [DeviceProcessEvents]\nstart_time: {}\ndelay: 1m\nstate_dir: {}\n{extra}",
            (Utc::now() - Duration::hours(1)).to_rfc3339(),
            setup.dir.path().join(name).display()
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"));
    command
        .args(["run", "--once", "--config"])
        .arg(&config)
        .env("EGRESS_SECRET", SECRET);
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn emitted(out: &Output) -> usize {
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn requests_go_through_the_configured_proxy_and_trust_the_ca_file() {
    let setup = setup();
    let extra = format!("proxy: {}\nca_file: {}\n", setup.proxy, setup.ca_file.display());
    let out = run(&setup, "configured", &extra, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(emitted(&out), ROWS, "{stderr}");
    let connects = setup.connects.lock().unwrap().clone();
    assert!(connects.contains(&"login.test:443".to_string()), "{connects:?}");
    assert!(connects.contains(&"graph.test:443".to_string()), "{connects:?}");
    assert!(!stderr.contains(SECRET));
}

#[test]
fn the_https_proxy_variable_is_honoured_when_no_proxy_is_configured() {
    let setup = setup();
    let extra = format!("ca_file: {}\n", setup.ca_file.display());
    let out = run(&setup, "environment", &extra, &[("HTTPS_PROXY", &setup.proxy)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(emitted(&out), ROWS, "{stderr}");
    assert!(setup.connects.lock().unwrap().contains(&"graph.test:443".to_string()));

    // NO_PROXY sends graph.test direct, where nothing resolves it.
    let out = run(
        &setup,
        "bypassed",
        &extra,
        &[("HTTPS_PROXY", &setup.proxy), ("NO_PROXY", "login.test,graph.test")],
    );
    assert!(!out.status.success());
    assert_eq!(emitted(&out), 0);
}

#[test]
fn an_untrusted_certificate_fails_with_a_message_that_points_at_ca_file() {
    let setup = setup();
    let out = run(&setup, "untrusted", &format!("proxy: {}\n", setup.proxy), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the test CA is not trusted without ca_file");
    assert_eq!(emitted(&out), 0);
    assert!(stderr.contains("TLS certificate"), "{stderr}");
    assert!(stderr.contains("`ca_file`"), "{stderr}");
    assert!(!setup.connects.lock().unwrap().is_empty(), "it went through the proxy");
}

#[test]
fn bad_proxy_and_ca_file_settings_are_refused_before_anything_runs() {
    let setup = setup();
    let out = run(&setup, "badproxy", "proxy: socks://nowhere\n", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("`proxy` must be an http:// or https:// URL"), "{stderr}");

    let garbage = setup.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let out = run(&setup, "badca", &format!("ca_file: {}\n", garbage.display()), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
    assert!(setup.connects.lock().unwrap().is_empty());
}

//! Test components built from the workspace for wasm32-wasip2, once per test
//! run each, in the target directory the host's build script uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Builds the workspace package `package` (a test component) and returns
/// the path of its `.wasm`.
#[allow(dead_code)]
pub fn build(package: &str) -> PathBuf {
    build_with(package, None)
}

/// As [`build`], with a feature of the package on (in a target directory
/// of its own, as the artefact has the same name).
pub fn build_with(package: &str, feature: Option<&str>) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let key = format!("{package} {}", feature.unwrap_or(""));
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = built.get(&key) {
        return path.clone();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let target_dir = root.join("target").join(match feature {
        None => "guest".to_string(),
        Some(f) => format!("guest-{f}"),
    });
    let mut cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&root)
        .args(["build", "--release", "--locked", "-p", package, "--target", "wasm32-wasip2"])
        .args(feature.iter().flat_map(|f| ["--features", f]))
        .arg("--target-dir")
        .arg(&target_dir);
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR", "RUSTC_WRAPPER"] {
        cargo.env_remove(var);
    }
    let status = cargo.status().expect("running cargo to build a test component");
    assert!(status.success(), "building {package} for wasm32-wasip2 failed");
    let path = target_dir.join(format!("wasm32-wasip2/release/{}.wasm", package.replace('-', "_")));
    built.insert(key, path.clone());
    path
}

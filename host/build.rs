//! Builds the collector component (the workspace's root package) for
//! `wasm32-wasip2` so that the host can embed it as its default component.
//!
//! The component gets its own target directory, `target/guest`, so that this
//! nested cargo never waits on the lock of the build that runs this script.
//! The resulting `.wasm` stays there for anyone who wants the file itself.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().expect("host/ sits in the workspace root").to_path_buf();
    for watched in ["src", "wit", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=DEFENDER_OCSF_COMPONENT");

    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("collector.wasm");

    // A prebuilt component may be supplied instead (packaging, or a machine
    // without the wasm32-wasip2 target).
    if let Ok(prebuilt) = std::env::var("DEFENDER_OCSF_COMPONENT") {
        std::fs::copy(&prebuilt, &out).unwrap_or_else(|e| panic!("DEFENDER_OCSF_COMPONENT={prebuilt}: {e}"));
        return;
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = root.join("target").join("guest");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "defender-ocsf-collector",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // Flags meant for the host (coverage, sanitizers, target-cpu) must not
    // reach the wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_PROFILE_") || key.starts_with("CARGO_CFG_") || key.starts_with("CARGO_FEATURE_") {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().expect("could not run cargo to build the collector component");
    if !status.success() {
        panic!(
            "building the collector component for wasm32-wasip2 failed (see above). \
             If the target is missing, run: rustup target add wasm32-wasip2"
        );
    }
    let built = target_dir
        .join("wasm32-wasip2")
        .join("release")
        .join("defender_ocsf_collector.wasm");
    std::fs::copy(&built, &out).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
}

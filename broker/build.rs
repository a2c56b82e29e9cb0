//! Records the version of the compiler that builds the broker, reported as
//! INFO/varz `go` ("rust1.95.0"), the way nats-server reports
//! `runtime.Version()` (server.go New: info.GoVersion) rather than a
//! minimum supported version.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    // `rustc 1.95.0 (59807616e 2026-01-01)` -> `1.95.0`; empty if unknown.
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_default();
    println!("cargo:rustc-env=BROKER_RUSTC_VERSION={version}");
}

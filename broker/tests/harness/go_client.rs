//! The Go NATS client of the tests (`tests/go_client`, nats.go from Debian's sources), shared
//! by `harness` and `scion_common`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `tests/go_client` built with nats.go from Debian's golang-github-nats-io-go-nats-dev
/// (GOPATH mode, offline), once per test run; None when `go` or the sources are missing
/// (an error under NATS_SCION_REQUIRE_PEERS, which the test command sets).
pub fn go_client() -> Option<PathBuf> {
    static BIN: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let gocode = Path::new("/usr/share/gocode");
        let have_go = std::process::Command::new("go")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !gocode.join("src/github.com/nats-io/nats.go/nats.go").exists() || !have_go {
            assert!(
                std::env::var_os("NATS_SCION_REQUIRE_PEERS").is_none(),
                "go and golang-github-nats-io-go-nats-dev are required (scripts/test.sh installs them)"
            );
            eprintln!("skipping the Go client: go or nats.go sources not installed");
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("goclient");
        let src = dir.join("src/goclient");
        std::fs::create_dir_all(&src).expect("dir");
        let main = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go_client/main.go");
        std::fs::copy(&main, src.join("main.go")).expect("copy Go client");
        let bin = dir.join("goclient");
        let built = std::process::Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg("goclient")
            .current_dir(&dir)
            .env("GO111MODULE", "off")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("GOTOOLCHAIN", "local")
            .env(
                "GOPATH",
                format!("{}:{}", dir.display(), gocode.display()),
            )
            .output()
            .expect("run go build");
        assert!(
            built.status.success(),
            "go build: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        Some(bin)
    })
    .clone()
}

/// Runs the Go client with `args` (plus `env`) and requires it to report all `n` messages
/// back within 60 s; `what` names the run in a failure.
pub async fn expect_go_client(
    go: &Path,
    args: &[String],
    env: &[(&str, &Path)],
    n: usize,
    what: &str,
) {
    let mut cmd = tokio::process::Command::new(go);
    cmd.args(args).kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: the Go client did not finish in 60 s"))
        .expect("run the Go client");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.starts_with(&format!("received {n}/{n}")),
        "{what}: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

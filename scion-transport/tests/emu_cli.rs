//! `scion-emu` as its own process: `run` prints its addresses, `ctl` changes links.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_scion-emu");

async fn ctl(control: &str, args: &[&str]) -> (bool, String) {
    let out = timeout(
        Duration::from_secs(10),
        Command::new(BIN)
            .arg("ctl")
            .arg(control)
            .args(args)
            .output(),
    )
    .await
    .expect("ctl in time")
    .expect("ctl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn run_prints_addresses_and_ctl_controls_links() {
    let topo = concat!(env!("CARGO_MANIFEST_DIR"), "/emu/two-paths.toml");
    let dir = std::env::temp_dir().join(format!("scion-emu-cli-{}", std::process::id()));
    let mut child = Command::new(BIN)
        .args(["run", topo, "--topology-dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn scion-emu");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut control = None;
    let mut ases = 0;
    while ases < 3 {
        let line = timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("emulator output in time")
            .expect("read")
            .expect("emulator still running");
        if let Some(addr) = line.strip_prefix("control ") {
            control = Some(addr.to_string());
        }
        if line.starts_with("as ") {
            assert!(
                line.contains("daemon=127.0.0.1:") && line.contains("router=127.0.0.1:"),
                "{line}"
            );
            ases += 1;
        }
    }
    let control = control.expect("control address printed");
    let json = std::fs::read_to_string(dir.join("1-ff00_0_111.topology.json"))
        .expect("topology.json written");
    assert!(
        json.contains("\"dispatched_ports\": \"31000-32767\""),
        "{json}"
    );

    let (ok, answer) = ctl(&control, &["link", "1-ff00:0:110#1", "blackhole"]).await;
    assert!(ok && answer.trim() == "ok", "{answer}");
    let (_, show) = ctl(&control, &["show"]).await;
    assert!(
        show.contains("link 1-ff00:0:110#1 1-ff00:0:111#1 state=Blackhole"),
        "{show}"
    );
    let (ok, answer) = ctl(&control, &["link", "1-ff00:0:110#1", "sideways"]).await;
    assert!(!ok && answer.starts_with("error:"), "{answer}");

    child.kill().await.expect("stop emulator");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the binary with `args`: (exit code, stdout, stderr).
async fn run_cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = timeout(
        Duration::from_secs(10),
        Command::new(BIN).args(args).output(),
    )
    .await
    .expect("exits in time")
    .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn help_prints_usage_and_bad_arguments_exit_2() {
    let (code, out, err) = run_cli(&["--help"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("usage: scion-emu run"), "{out}");
    assert!(err.is_empty(), "no error for --help: {err}");

    for bad in [
        &["run", "t.toml", "--bogus", "1"][..],
        &["frob"][..],
        &[][..],
        &["ctl", "not-an-address", "show"][..],
    ] {
        let (code, out, err) = run_cli(bad).await;
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(out.is_empty(), "{bad:?}: {out}");
        let mut lines = err.lines();
        let first = lines.next().unwrap_or("");
        assert!(first.starts_with("scion-emu: "), "{bad:?}: {err}");
        assert!(
            lines.next().unwrap_or("").starts_with("usage: "),
            "{bad:?}: {err}"
        );
        assert!(
            !err.contains("Stack backtrace") && !err.contains("Error: "),
            "{err}"
        );
    }

    // A runtime failure is one line and exit 1.
    let (code, _, err) = run_cli(&["run", "/nonexistent/topology.toml"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("scion-emu: reading /nonexistent/topology.toml"),
        "{err}"
    );
}

//! `follow --clock discipline --check`: the discipline-mode start checks and the read-only
//! kernel clock query, run through the real binary. Every invocation here carries `--check`,
//! which exits before the first adjtimex write, so the host clock is never touched.

use std::process::Stdio;
use std::time::Duration;
use timesync::clock::KernelClock;
use timesync::steer;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_timesync");

/// The tests look at the machine's process list; one of them adds a fake time daemon, so
/// they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Run `[wrapper...] timesync follow --id t --source ref --clock discipline --check [extra]`.
async fn check(wrapper: &[&str], extra: &[&str]) -> Out {
    let mut argv: Vec<&str> = wrapper.to_vec();
    argv.extend([
        BIN,
        "follow",
        "--id",
        "t",
        "--source",
        "ref",
        "--clock",
        "discipline",
        "--check",
    ]);
    argv.extend(extra);
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(argv[0])
            .args(&argv[1..])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("check finishes within 20 s")
    .expect("run timesync");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn have_cap() -> bool {
    steer::has_cap_sys_time(&std::fs::read_to_string("/proc/self/status").unwrap_or_default())
}

fn daemons() -> Vec<steer::Process> {
    steer::conflicts(&steer::scan_processes().expect("read /proc"))
}

/// With the privilege and no daemon, the check passes and reports the kernel state it read
/// through the same code path discipline mode uses; the kernel frequency is unchanged after.
#[tokio::test]
async fn check_reads_kernel_clock_without_writing() {
    let _serial = SERIAL.lock().await;
    let before = KernelClock::open().expect("adjtimex modes=0").state();
    let out = check(&[], &[]).await;
    let after = KernelClock::open().expect("adjtimex modes=0").state();
    assert_eq!(
        (before.freq_ppm, before.status),
        (after.freq_ppm, after.status)
    );
    match (have_cap(), daemons().is_empty()) {
        (true, true) => {
            assert!(out.ok, "{}{}", out.stdout, out.stderr);
            assert!(out.stdout.contains("start checks passed"), "{}", out.stdout);
            assert!(
                out.stdout
                    .contains(&format!("frequency {:+.3} ppm", before.freq_ppm)),
                "{}",
                out.stdout
            );
            assert!(out.stdout.contains("nothing changed"), "{}", out.stdout);
        }
        (false, _) => {
            assert!(!out.ok);
            assert!(out.stderr.contains("needs CAP_SYS_TIME"), "{}", out.stderr);
        }
        (true, false) => {
            assert!(!out.ok);
            assert!(out.stderr.contains("another time daemon"), "{}", out.stderr);
        }
    }
}

/// Without CAP_SYS_TIME discipline mode refuses with a clear error. As root the capability
/// is removed from the bounding and inheritable sets by util-linux `setpriv`, so the exec'd
/// binary runs without it.
#[tokio::test]
async fn refuses_without_cap_sys_time() {
    let _serial = SERIAL.lock().await;
    let wrapper: &[&str] = if have_cap() {
        &[
            "setpriv",
            "--inh-caps=-sys_time",
            "--bounding-set=-sys_time",
            "--",
        ]
    } else {
        &[]
    };
    let out = check(wrapper, &[]).await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("--clock discipline needs CAP_SYS_TIME"),
        "{}",
        out.stderr
    );
    // --force overrides a running daemon, never the missing privilege.
    let out = check(wrapper, &["--force"]).await;
    assert!(!out.ok);
    assert!(out.stderr.contains("needs CAP_SYS_TIME"), "{}", out.stderr);
}

/// A running time daemon (a process whose name is `chronyd`: a copy of `sleep`) makes
/// discipline mode refuse, naming it; `--force` starts anyway with a warning.
#[tokio::test]
async fn refuses_when_another_time_daemon_runs_unless_forced() {
    let _serial = SERIAL.lock().await;
    let dir = std::env::temp_dir().join(format!("timesync-fake-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fake = dir.join("chronyd");
    std::fs::copy("/bin/sleep", &fake).expect("copy /bin/sleep");
    let mut daemon = Command::new(&fake)
        .arg("60")
        .kill_on_drop(true)
        .spawn()
        .expect("start fake chronyd");
    let pid = daemon.id().expect("fake daemon pid");
    // Bounded wait until /proc shows it under its name (exec has happened).
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        while !daemons().iter().any(|p| p.pid == pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(seen.is_ok(), "fake chronyd not visible in /proc");

    let refused = check(&[], &[]).await;
    let forced = check(&[], &["--force"]).await;
    let _ = daemon.kill().await;
    let _ = std::fs::remove_dir_all(&dir);

    assert!(!refused.ok, "{}", refused.stdout);
    if have_cap() {
        let want = format!("chronyd (pid {pid})");
        assert!(
            refused.stderr.contains("another time daemon is running")
                && refused.stderr.contains(&want)
                && refused.stderr.contains("--force"),
            "{}",
            refused.stderr
        );
        assert!(forced.ok, "{}{}", forced.stdout, forced.stderr);
        assert!(
            forced
                .stderr
                .contains("--force: disciplining the clock although")
                && forced.stderr.contains(&want),
            "{}",
            forced.stderr
        );
        assert!(
            forced.stdout.contains("nothing changed"),
            "{}",
            forced.stdout
        );
    } else {
        // The privilege check comes first.
        assert!(refused.stderr.contains("needs CAP_SYS_TIME"));
        assert!(!forced.ok);
    }
}

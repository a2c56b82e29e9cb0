//! Runs one test in a network namespace of its own, so IPv6 tests can use `::1` without
//! touching any address of the machine. Shared by the scion-transport and broker tests
//! (`#[path]` includes).

use std::time::{Duration, Instant};

/// Longest a test may run in its namespace before it is killed and fails.
const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// Runs the test `name` of this binary alone, inside a new user and network namespace
/// (`unshare -rn`, then `ip link set lo up`: only its loopback, 127.0.0.1 and `::1`). True in
/// the child, which then runs the test body; in the parent, waits for the child (at most
/// [`CHILD_LIMIT`]) and asserts that it ran the test and passed. Creating the namespaces
/// needs root or unprivileged user namespaces; in a container, one allowed to create
/// namespaces (Docker's default seccomp profile refuses).
pub fn in_private_netns(name: &str) -> bool {
    const MARK: &str = "SCION_TEST_PRIVATE_NETNS";
    if std::env::var_os(MARK).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("test binary");
    let log = std::env::temp_dir().join(format!(
        "netns-{name}-{}-{}.log",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    let out = std::fs::File::create(&log).expect("child log");
    let err = out.try_clone().expect("child log");
    use std::os::unix::process::CommandExt;
    // Its own process group, so a child that runs over the limit is killed together with
    // what it started (broker processes).
    let mut child = std::process::Command::new("unshare")
        .args(["-rn", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(MARK, "1")
        .process_group(0)
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("unshare (util-linux) starts");
    let deadline = Instant::now() + CHILD_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let Some(status) = status else {
        panic!("{name} ran over {CHILD_LIMIT:?} in its namespace and was killed:\n{text}");
    };
    assert!(
        status.success(),
        "{name} in its namespace ({status}; `unshare -rn` needs root or unprivileged user \
         namespaces):\n{text}"
    );
    assert!(
        text.contains("1 passed"),
        "{name} did not run in its namespace:\n{text}"
    );
    false
}

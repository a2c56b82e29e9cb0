//! Free loopback TCP ports for test servers (shared by `harness` and `scion_common`).

/// A free loopback TCP port for a server to bind: bound and released, and never the same
/// number twice in this test process (the kernel may hand a released port to the next
/// bind(0), and tests run in parallel: two servers were given one port).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no fresh loopback port in 1000 tries");
}

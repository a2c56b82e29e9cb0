//! Why a connection closed, with nats-server's wording for `/connz`
//! (`server/monitor.go` `ClosedState.String`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedState {
    ClientClosed,
    TlsHandshakeError,
    AuthenticationTimeout,
    AuthenticationViolation,
    SlowConsumerPendingBytes,
    SlowConsumerWriteDeadline,
    WriteError,
    ReadError,
    ParseError,
    StaleConnection,
    ProtocolViolation,
    BadClientProtocolVersion,
    MaxConnectionsExceeded,
    MaxPayloadExceeded,
    MaxControlLineExceeded,
    MaxSubscriptionsExceeded,
    DuplicateRoute,
    DuplicateServerName,
    RouteRemoved,
    ServerShutdown,
    NoRespondersRequiresHeaders,
    ClusterNameConflict,
    MsgHeaderViolation,
    WrongPort,
}

impl ClosedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClosedState::ClientClosed => "Client Closed",
            ClosedState::TlsHandshakeError => "TLS Handshake Failure",
            ClosedState::AuthenticationTimeout => "Authentication Timeout",
            ClosedState::AuthenticationViolation => "Authentication Failure",
            ClosedState::SlowConsumerPendingBytes => "Slow Consumer (Pending Bytes)",
            ClosedState::SlowConsumerWriteDeadline => "Slow Consumer (Write Deadline)",
            ClosedState::WriteError => "Write Error",
            ClosedState::ReadError => "Read Error",
            ClosedState::ParseError => "Parse Error",
            ClosedState::StaleConnection => "Stale Connection",
            ClosedState::ProtocolViolation => "Protocol Violation",
            ClosedState::BadClientProtocolVersion => "Bad Client Protocol Version",
            ClosedState::MaxConnectionsExceeded => "Maximum Connections Exceeded",
            ClosedState::MaxPayloadExceeded => "Maximum Message Payload Exceeded",
            ClosedState::MaxControlLineExceeded => "Maximum Control Line Exceeded",
            ClosedState::MaxSubscriptionsExceeded => "Maximum Subscriptions Exceeded",
            ClosedState::DuplicateRoute => "Duplicate Route",
            ClosedState::DuplicateServerName => "Duplicate Server Name",
            ClosedState::RouteRemoved => "Route Removed",
            ClosedState::ServerShutdown => "Server Shutdown",
            ClosedState::NoRespondersRequiresHeaders => "No Responders Requires Headers",
            ClosedState::ClusterNameConflict => "Cluster Name Conflict",
            ClosedState::MsgHeaderViolation => "Message Header Violation",
            ClosedState::WrongPort => "Incorrect Port",
        }
    }
}

impl std::fmt::Display for ClosedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a read of a connection failed. A TCP read error is "Read Error" (client.go readLoop).
/// For a QUIC link (routes and client links over SCION):
/// - a peer that closed the connection on purpose (a graceful shutdown sends
///   CONNECTION_CLOSE, or a transport close without an error) is "Client Closed", as
///   nats-server says for a TCP peer that closed;
/// - an idle timeout is "Stale Connection": QUIC keep-alives went unanswered, the link's
///   liveness check (nats-server's is its PINGs);
/// - anything else (a reset, a protocol error) is "Read Error".
pub(crate) fn read_error_state(e: &std::io::Error) -> ClosedState {
    use quinn::{ConnectionError, ReadError};
    let lost = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ReadError>());
    match lost {
        Some(ReadError::ConnectionLost(ConnectionError::ApplicationClosed(_))) => {
            ClosedState::ClientClosed
        }
        Some(ReadError::ConnectionLost(ConnectionError::ConnectionClosed(c)))
            if c.error_code == quinn::TransportErrorCode::NO_ERROR =>
        {
            ClosedState::ClientClosed
        }
        Some(ReadError::ConnectionLost(ConnectionError::TimedOut)) => ClosedState::StaleConnection,
        // A TLS client that closed its socket without close_notify: Go's crypto/tls reads
        // that as io.EOF at a record boundary, and readLoop says Client Closed.
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => ClosedState::ClientClosed,
        _ => ClosedState::ReadError,
    }
}

/// [`read_error_state`] for a connection's reader, with nats-server's debug line when the
/// link went stale (its text, as the PING timer logs it: a QUIC idle timeout is this link's
/// unanswered keep-alive).
pub(crate) fn read_error_closing(
    e: &std::io::Error,
    prefix: &dyn std::fmt::Display,
) -> ClosedState {
    // client.go readLoop: a websocket framing error is logged as a read error.
    if let Some(ws) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<super::ws::WsProtocolError>())
    {
        tracing::error!("{} - read error: {}", prefix, ws);
        return ClosedState::ReadError;
    }
    let state = read_error_state(e);
    if state == ClosedState::StaleConnection {
        tracing::debug!("{} - Stale Client Connection - Closing", prefix);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_read_errors_map_to_nats_reasons() {
        let closed: std::io::Error = quinn::ReadError::ConnectionLost(
            quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
                error_code: quinn::VarInt::from_u32(0),
                reason: bytes::Bytes::from_static(b"shutdown"),
            }),
        )
        .into();
        assert_eq!(read_error_state(&closed), ClosedState::ClientClosed);
        let reset: std::io::Error =
            quinn::ReadError::ConnectionLost(quinn::ConnectionError::Reset).into();
        assert_eq!(read_error_state(&reset), ClosedState::ReadError);
        let timed_out: std::io::Error =
            quinn::ReadError::ConnectionLost(quinn::ConnectionError::TimedOut).into();
        assert_eq!(read_error_state(&timed_out), ClosedState::StaleConnection);
        let tcp_reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(read_error_state(&tcp_reset), ClosedState::ReadError);
        let violation: std::io::Error = quinn::ReadError::ConnectionLost(
            quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
                error_code: quinn::TransportErrorCode::PROTOCOL_VIOLATION,
                frame_type: None,
                reason: bytes::Bytes::new(),
            }),
        )
        .into();
        assert_eq!(read_error_state(&violation), ClosedState::ReadError);
    }
}

//! Why a connection closed, with nats-server's wording for `/connz`
//! (`server/monitor.go` `ClosedState.String`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedState {
    ClientClosed,
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

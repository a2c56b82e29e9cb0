//! CONNECT and INFO documents, with nats-server 2.9.10 field names and order
//! (`server/server.go` `Info`, `server/client.go` `clientOpts`).

use serde::{Deserialize, Serialize};

/// The client's CONNECT options. Omitted fields take nats-server's
/// `defaultOpts`: verbose, pedantic and echo default to true.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ConnectInfo {
    pub echo: bool,
    pub verbose: bool,
    pub pedantic: bool,
    pub tls_required: bool,
    pub jwt: Option<String>,
    pub nkey: Option<String>,
    pub sig: Option<String>,
    pub auth_token: Option<String>,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub name: Option<String>,
    pub lang: Option<String>,
    pub version: Option<String>,
    pub protocol: i64,
    pub account: Option<String>,
    pub new_account: bool,
    pub headers: bool,
    pub no_responders: bool,
    // Route CONNECT fields (server/route.go connectInfo).
    pub cluster: Option<String>,
    pub dynamic: bool,
    pub lnoc: bool,
    pub gateway: Option<String>,
}

impl Default for ConnectInfo {
    fn default() -> Self {
        ConnectInfo {
            echo: true,
            verbose: true,
            pedantic: true,
            tls_required: false,
            jwt: None,
            nkey: None,
            sig: None,
            auth_token: None,
            user: None,
            pass: None,
            name: None,
            lang: None,
            version: None,
            protocol: 0,
            account: None,
            new_account: false,
            headers: false,
            no_responders: false,
            cluster: None,
            dynamic: false,
            lnoc: false,
            gateway: None,
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The server's INFO. Field order and omitempty rules follow `server.Info`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct ServerInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: i32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub git_commit: Option<String>,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    #[serde(skip_serializing_if = "is_false", default)]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "is_false", default)]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "is_false", default)]
    pub tls_verify: bool,
    #[serde(skip_serializing_if = "is_false", default)]
    pub tls_available: bool,
    pub max_payload: i64,
    #[serde(skip_serializing_if = "is_false", default)]
    pub jetstream: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub client_id: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "is_false", default)]
    pub cluster_dynamic: bool,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "is_false", default)]
    pub ldm: bool,
    // Route specific.
    #[serde(skip_serializing_if = "is_false", default)]
    pub lnoc: bool,
    #[serde(skip_serializing_if = "is_false", default)]
    pub info_on_connect: bool,
    #[serde(skip_serializing_if = "is_false", default)]
    pub connect_info: bool,
}

impl ServerInfo {
    /// `INFO {json} \r\n` — nats-server joins the parts with spaces, so a
    /// space precedes the CRLF (`generateClientInfoJSON`).
    pub fn to_line(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"INFO ");
        // Serialising a struct of strings, bools and integers cannot fail.
        if serde_json::to_writer(&mut out, self).is_err() {
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b" \r\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_defaults_like_nats_server() {
        let c: ConnectInfo = serde_json::from_slice(b"{}").unwrap();
        assert!(c.verbose && c.pedantic && c.echo);
        assert!(!c.headers && !c.no_responders);
        let c: ConnectInfo =
            serde_json::from_slice(br#"{"verbose":false,"echo":false,"headers":true,"x":1}"#)
                .unwrap();
        assert!(!c.verbose && !c.echo && c.headers && c.pedantic);
    }

    #[test]
    fn info_line_shape() {
        let info = ServerInfo {
            server_id: "ID".into(),
            server_name: "n".into(),
            version: "2.9.10".into(),
            proto: 1,
            go: "go1.19".into(),
            host: "0.0.0.0".into(),
            port: 4222,
            headers: true,
            max_payload: 1048576,
            client_id: 5,
            client_ip: Some("127.0.0.1".into()),
            ..Default::default()
        };
        let line = String::from_utf8(info.to_line()).unwrap();
        assert_eq!(
            line,
            "INFO {\"server_id\":\"ID\",\"server_name\":\"n\",\"version\":\"2.9.10\",\"proto\":1,\"go\":\"go1.19\",\"host\":\"0.0.0.0\",\"port\":4222,\"headers\":true,\"max_payload\":1048576,\"client_id\":5,\"client_ip\":\"127.0.0.1\"} \r\n"
        );
    }
}

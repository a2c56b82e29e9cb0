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
    /// nats-scion extension on route INFO: the SCION client listeners of
    /// the cluster (`[ISD-AS,IP]:port`). Kept out of `connect_urls` there
    /// because nats-server peers would pass them to TCP clients, whose
    /// libraries reject addresses they cannot parse. nats-server ignores
    /// unknown INFO fields.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub scion_connect_urls: Vec<String>,
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

/// Why a client's CONNECT document was rejected (nats-server then closes the
/// connection without an `-ERR`).
#[derive(Debug, thiserror::Error)]
pub enum ConnectJsonError {
    #[error("{0}")]
    Syntax(#[from] serde_json::Error),
    #[error("json: cannot unmarshal {found} into Go struct field ClientOpts.{field}")]
    Type {
        field: &'static str,
        found: &'static str,
    },
}

/// The JSON kind of a value, worded like Go's `UnmarshalTypeError`.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Go's `encoding/json` matches object keys to field names without regard
/// to case, with the two Unicode folds that map onto ASCII letters
/// (U+017F long s, U+212A Kelvin sign) included.
fn fold_key(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

impl ConnectInfo {
    /// Applies a client's CONNECT document on top of `self` the way Go's
    /// `json.Unmarshal` fills nats-server's existing `ClientOpts`
    /// (`client.go` `processConnect`): absent fields keep their current
    /// values (a second CONNECT without `verbose` keeps the first one's),
    /// keys match case-insensitively, a later duplicate key wins, `null`
    /// leaves a field unchanged, a non-object document or a value of the
    /// wrong type is an error, invalid UTF-8 in strings becomes U+FFFD, and
    /// fields clients do not have (route-only ones) are ignored.
    pub fn merge_client_json(&mut self, json: &[u8]) -> Result<(), ConnectJsonError> {
        let text = String::from_utf8_lossy(json);
        let mut de = serde_json::Deserializer::from_str(&text);
        let mut first_err = None;
        serde::de::DeserializeSeed::deserialize(
            MergeSeed {
                into: self,
                err: &mut first_err,
            },
            &mut de,
        )?;
        de.end()?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn apply_client_field(
        &mut self,
        key: &str,
        v: serde_json::Value,
    ) -> Result<(), ConnectJsonError> {
        use serde_json::Value;
        if v.is_null() {
            return Ok(());
        }
        let key = fold_key(key);
        let bool_field: Option<(&'static str, &mut bool)> = match key.as_str() {
            "echo" => Some(("echo", &mut self.echo)),
            "verbose" => Some(("verbose", &mut self.verbose)),
            "pedantic" => Some(("pedantic", &mut self.pedantic)),
            "tls_required" => Some(("tls_required", &mut self.tls_required)),
            "new_account" => Some(("new_account", &mut self.new_account)),
            "headers" => Some(("headers", &mut self.headers)),
            "no_responders" => Some(("no_responders", &mut self.no_responders)),
            _ => None,
        };
        if let Some((field, slot)) = bool_field {
            return match v {
                Value::Bool(b) => {
                    *slot = b;
                    Ok(())
                }
                other => Err(ConnectJsonError::Type {
                    field,
                    found: json_kind(&other),
                }),
            };
        }
        let string_field: Option<(&'static str, &mut Option<String>)> = match key.as_str() {
            "jwt" => Some(("jwt", &mut self.jwt)),
            "nkey" => Some(("nkey", &mut self.nkey)),
            "sig" => Some(("sig", &mut self.sig)),
            "auth_token" => Some(("auth_token", &mut self.auth_token)),
            "user" => Some(("user", &mut self.user)),
            "pass" => Some(("pass", &mut self.pass)),
            "name" => Some(("name", &mut self.name)),
            "lang" => Some(("lang", &mut self.lang)),
            "version" => Some(("version", &mut self.version)),
            "account" => Some(("account", &mut self.account)),
            _ => None,
        };
        if let Some((field, slot)) = string_field {
            return match v {
                Value::String(s) => {
                    *slot = Some(s);
                    Ok(())
                }
                other => Err(ConnectJsonError::Type {
                    field,
                    found: json_kind(&other),
                }),
            };
        }
        match key.as_str() {
            "protocol" => match v.as_i64() {
                Some(p) => {
                    self.protocol = p;
                    Ok(())
                }
                None => Err(ConnectJsonError::Type {
                    field: "protocol",
                    found: json_kind(&v),
                }),
            },
            // Leafnode-only string and the route/leaf permission objects:
            // type-checked like Go, otherwise unused for clients.
            "remote_account" => match v {
                Value::String(_) => Ok(()),
                other => Err(ConnectJsonError::Type {
                    field: "remote_account",
                    found: json_kind(&other),
                }),
            },
            "import" | "export" => match v {
                Value::Object(_) => Ok(()),
                other => Err(ConnectJsonError::Type {
                    field: if key == "import" { "import" } else { "export" },
                    found: json_kind(&other),
                }),
            },
            _ => Ok(()),
        }
    }
}

/// Streams the members of a CONNECT object in document order into a
/// `ConnectInfo` (so duplicates resolve like Go: last one wins).
struct MergeSeed<'a> {
    into: &'a mut ConnectInfo,
    err: &'a mut Option<ConnectJsonError>,
}

impl<'de> serde::de::DeserializeSeed<'de> for MergeSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for MergeSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a CONNECT object")
    }

    /// A `null` document leaves every option as it was (Go: no-op).
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let value: serde_json::Value = map.next_value()?;
            if let Err(e) = self.into.apply_client_field(&key, value) {
                // Go keeps decoding after a type error and reports the first.
                if self.err.is_none() {
                    *self.err = Some(e);
                }
            }
        }
        Ok(())
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
    #[test]
    fn merge_like_go_unmarshal() {
        let mut c = ConnectInfo::default();
        c.merge_client_json(br#"{"verbose":false,"name":"a"}"#)
            .unwrap();
        // Absent fields keep their values from the earlier CONNECT.
        c.merge_client_json(b"{}").unwrap();
        assert!(!c.verbose && c.pedantic);
        assert_eq!(c.name.as_deref(), Some("a"));
        // Keys fold case; later duplicates win; null is a no-op.
        c.merge_client_json(br#"{"Verbose":true,"VERBOSE":false,"echo":null}"#)
            .unwrap();
        assert!(!c.verbose && c.echo);
        c.merge_client_json("{\"\u{17f}ig\":\"x\"}".as_bytes())
            .unwrap();
        assert_eq!(c.sig.as_deref(), Some("x"));
        // Route-only fields are ignored for clients; a null document is fine.
        c.merge_client_json(br#"{"cluster":5,"lnoc":"x"}"#).unwrap();
        c.merge_client_json(b"null").unwrap();
        // Invalid UTF-8 inside strings is replaced, not rejected.
        c.merge_client_json(b"{\"name\":\"\xff\"}").unwrap();
        assert_eq!(c.name.as_deref(), Some("\u{fffd}"));
        for bad in [
            &b"[]"[..],
            b"\"x\"",
            b"{\"verbose\":\"yes\"}",
            b"{\"protocol\":1.5}",
            b"{\"protocol\":\"1\"}",
            b"{\"user\":1}",
            b"{\"import\":1}",
            b"{} x",
            b"{",
        ] {
            let mut c = ConnectInfo::default();
            assert!(
                c.merge_client_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

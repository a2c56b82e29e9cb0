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
    /// Go's route `connectInfo.Dynamic` is tagged `cluster_dynamic`.
    #[serde(rename = "cluster_dynamic")]
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

/// The CONNECT a route's dialler sends (route.go connectInfo, sendRouteConnect): Go's
/// field order, and `omitempty` where Go has it (no `user`/`pass` without credentials, no
/// `cluster_dynamic` for a configured cluster name).
#[derive(Debug, Clone, Serialize)]
pub struct RouteConnect<'a> {
    pub echo: bool,
    pub verbose: bool,
    pub pedantic: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub user: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub pass: &'a str,
    pub tls_required: bool,
    pub headers: bool,
    pub name: &'a str,
    pub cluster: &'a str,
    #[serde(skip_serializing_if = "is_false")]
    pub cluster_dynamic: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub lnoc: bool,
}

impl RouteConnect<'_> {
    /// `CONNECT {json}\r\n` (route.go ConProto).
    pub fn to_line(&self) -> Vec<u8> {
        proto_line(b"CONNECT ", self, b"\r\n")
    }
}

/// `op`, the JSON of `doc`, then `end`: one protocol line. The JSON is escaped as Go's
/// `json.Marshal` escapes it (`<`, `>`, `&`, U+2028, U+2029 as `\u003c` …), so a server
/// name or route password with those characters gives nats-server's bytes.
fn proto_line(op: &[u8], doc: &impl Serialize, end: &[u8]) -> Vec<u8> {
    // Serialising a struct of strings, bools and integers cannot fail.
    let json = serde_json::to_vec(doc).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = Vec::with_capacity(op.len() + json.len() + end.len() + 16);
    out.extend_from_slice(op);
    go_html_escape(&json, &mut out);
    out.extend_from_slice(end);
    out
}

/// Go's encoding/json HTML-safe escaping of an already valid JSON text. These characters
/// can only occur inside strings, so escaping them wherever they are is exact.
fn go_html_escape(json: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            // U+2028 and U+2029 in UTF-8.
            0xE2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.extend_from_slice(if json[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                continue;
            }
            b => out.push(b),
        }
        i += 1;
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// nats-server `SubjectPermission` as JSON (route INFO `import`/`export`, /routez).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct SubjectPerm {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub allow: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub deny: Vec<String>,
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
    /// Route INFO: the sender's websocket connect URLs (server.Info `WSConnectURLs`).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub ws_connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "is_false", default)]
    pub ldm: bool,
    /// Route permissions (server.Info `Import`/`Export`, `*SubjectPermission`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub import: Option<SubjectPerm>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub export: Option<SubjectPerm>,
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
        proto_line(b"INFO ", self, b" \r\n")
    }
}

/// Why a client's CONNECT document was rejected (nats-server then closes the
/// connection without an `-ERR`).
#[derive(Debug, thiserror::Error)]
pub enum ConnectJsonError {
    #[error("{0}")]
    Syntax(#[from] serde_json::Error),
    #[error(
        "json: cannot unmarshal {found} into Go struct field ClientOpts.{field} of type {go_type}"
    )]
    Type {
        field: &'static str,
        found: String,
        go_type: &'static str,
    },
    #[error("json: cannot unmarshal {0} into Go value of type server.ClientOpts")]
    NotObject(&'static str),
    /// Go's scanner rejects the document (its words, from [`super::gojson`]).
    #[error("{0}")]
    GoSyntax(String),
}

/// The kind of a document that is neither an object nor `null` (Go cannot unmarshal
/// it into a struct), from its first byte.
fn non_object_kind(json: &[u8]) -> Option<&'static str> {
    match json.iter().find(|b| !b.is_ascii_whitespace())? {
        b'[' => Some("array"),
        b'"' => Some("string"),
        b't' | b'f' => Some("bool"),
        b'-' | b'0'..=b'9' => Some("number"),
        _ => None,
    }
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
        if let Some(text) = super::gojson::syntax_error(json) {
            return Err(ConnectJsonError::GoSyntax(text));
        }
        if let Some(kind) = non_object_kind(json) {
            return Err(ConnectJsonError::NotObject(kind));
        }
        let mut first_err = None;
        for_each_field(json, |key, value, raw| {
            if let Err(e) = self.apply_client_field(key, value, raw) {
                // Go keeps decoding after a type error and reports the first.
                first_err.get_or_insert(e);
            }
        })?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn apply_client_field(
        &mut self,
        key: &str,
        v: serde_json::Value,
        raw: &str,
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
                    found: found_kind(&other, "bool", raw),
                    go_type: "bool",
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
                    found: found_kind(&other, "string", raw),
                    go_type: "string",
                }),
            };
        }
        match key.as_str() {
            // Go's ParseInt of the literal: `-0` is 0 (serde_json reads it as a float).
            "protocol" => match raw.trim().parse::<i64>().ok().or_else(|| v.as_i64()) {
                Some(p) => {
                    self.protocol = p;
                    Ok(())
                }
                None => Err(ConnectJsonError::Type {
                    field: "protocol",
                    found: found_kind(&v, "int", raw),
                    go_type: "int",
                }),
            },
            // Leafnode-only string and the route/leaf permission objects:
            // type-checked like Go, otherwise unused for clients.
            "remote_account" => match v {
                Value::String(_) => Ok(()),
                other => Err(ConnectJsonError::Type {
                    field: "remote_account",
                    found: found_kind(&other, "string", raw),
                    go_type: "string",
                }),
            },
            "import" | "export" => match v {
                Value::Object(_) => Ok(()),
                other => Err(ConnectJsonError::Type {
                    field: if key == "import" { "import" } else { "export" },
                    found: found_kind(&other, "server.SubjectPermission", raw),
                    go_type: "server.SubjectPermission",
                }),
            },
            _ => Ok(()),
        }
    }
}

/// The error nats-server logs for a route's CONNECT document, or `None`: it is
/// unmarshalled twice, into `ClientOpts` (client.go processConnect, every connection
/// kind) and then into the route's `connectInfo` (route.go processRouteConnect), whose
/// own fields are checked only if the first pass took the document.
pub fn route_connect_error(json: &[u8]) -> Option<String> {
    if let Err(e) = ConnectInfo::default().merge_client_json(json) {
        return Some(e.to_string());
    }
    let mut first = None;
    let _ = for_each_field(json, |key, v, raw| {
        if v.is_null() {
            return;
        }
        let key = fold_key(key);
        let (field, go_type, fits) = match key.as_str() {
            "cluster" => ("cluster", "string", v.is_string()),
            "gateway" => ("gateway", "string", v.is_string()),
            "cluster_dynamic" => ("cluster_dynamic", "bool", v.is_boolean()),
            "lnoc" => ("lnoc", "bool", v.is_boolean()),
            _ => return,
        };
        if !fits {
            first.get_or_insert(format!(
                "json: cannot unmarshal {} into Go struct field connectInfo.{field} of type {go_type}",
                found_kind(&v, go_type, raw)
            ));
        }
    });
    first
}

/// Why a route's INFO document was rejected (nats-server client.go
/// `processInfo` returns the `json.Unmarshal` error and the route is closed
/// as a Protocol Violation).
#[derive(Debug, thiserror::Error)]
pub enum InfoJsonError {
    #[error("{0}")]
    Syntax(#[from] serde_json::Error),
    #[error("json: cannot unmarshal {found} into Go struct field Info.{field} of type {go_type}")]
    Type {
        field: &'static str,
        found: String,
        go_type: &'static str,
    },
    #[error("json: cannot unmarshal {0} into Go value of type server.Info")]
    NotObject(&'static str),
    #[error("{0}")]
    GoSyntax(String),
}

/// Go's wording for the value found (encoding/json literalStore): the kind, and for a
/// number going into a numeric field its literal as written (`number 1e3`).
fn found_kind(v: &serde_json::Value, go_type: &str, raw: &str) -> String {
    let numeric =
        go_type.starts_with("int") || go_type.starts_with("uint") || go_type.starts_with("float");
    match v {
        serde_json::Value::Number(_) if numeric => format!("number {}", raw.trim()),
        other => json_kind(other).to_string(),
    }
}

fn info_type_err(
    field: &'static str,
    go_type: &'static str,
    v: &serde_json::Value,
    raw: &str,
) -> InfoJsonError {
    InfoJsonError::Type {
        field,
        found: found_kind(v, go_type, raw),
        go_type,
    }
}

/// A Go `[]string`: `null` elements decode to "" and any other non-string
/// element is a type error.
fn go_string_slice(
    field: &'static str,
    v: serde_json::Value,
) -> Result<Vec<String>, InfoJsonError> {
    use serde_json::Value;
    match v {
        Value::Array(items) => items
            .into_iter()
            .map(|it| match it {
                Value::String(s) => Ok(s),
                Value::Null => Ok(String::new()),
                other => Err(info_type_err(field, "string", &other, "")),
            })
            .collect(),
        other => Err(info_type_err(field, "[]string", &other, "")),
    }
}

/// Whether `s` decodes as standard padded base64, as Go's `[]byte` fields
/// require (encoding/json uses `base64.StdEncoding`, which skips CR/LF).
fn is_std_base64(s: &str) -> bool {
    let b: Vec<u8> = s.bytes().filter(|c| *c != b'\r' && *c != b'\n').collect();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    pad <= 2
        && b[..b.len() - pad]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

impl ServerInfo {
    /// Decodes a route's INFO the way nats-server 2.9.10 does (client.go
    /// `processInfo`: `json.Unmarshal` into a zero `server.Info`): no field
    /// is required (absent ones stay empty/zero), keys match without regard
    /// to case, a later duplicate wins, `null` leaves a field unset, unknown
    /// keys are ignored, invalid UTF-8 becomes U+FFFD; but a syntax error, a
    /// non-object document (other than `null`), or a value that does not fit
    /// the Go field's type (a string `port`, a fractional `proto`, a
    /// `max_payload` beyond int32, ...) is an error. A `port` that Go's
    /// `int` holds but a TCP port cannot is kept as 0 (nothing can dial it).
    pub fn from_route_json(json: &[u8]) -> Result<ServerInfo, InfoJsonError> {
        if let Some(text) = super::gojson::syntax_error(json) {
            return Err(InfoJsonError::GoSyntax(text));
        }
        if let Some(kind) = non_object_kind(json) {
            return Err(InfoJsonError::NotObject(kind));
        }
        let mut info = ServerInfo::default();
        let mut first_err = None;
        for_each_field(json, |key, value, raw| {
            if let Err(e) = info.apply_info_field(key, value, raw) {
                first_err.get_or_insert(e);
            }
        })?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(info),
        }
    }

    fn apply_info_field(
        &mut self,
        key: &str,
        v: serde_json::Value,
        raw: &str,
    ) -> Result<(), InfoJsonError> {
        use serde_json::Value;
        if v.is_null() {
            return Ok(());
        }
        let key = fold_key(key);
        let string_field: Option<(&'static str, Option<&mut String>)> = match key.as_str() {
            "server_id" => Some(("server_id", Some(&mut self.server_id))),
            "server_name" => Some(("server_name", Some(&mut self.server_name))),
            "version" => Some(("version", Some(&mut self.version))),
            "go" => Some(("go", Some(&mut self.go))),
            "host" => Some(("host", Some(&mut self.host))),
            // Go fields we do not keep, type-checked all the same.
            "domain" => Some(("domain", None)),
            "gateway" => Some(("gateway", None)),
            "gateway_url" => Some(("gateway_url", None)),
            "remote_account" => Some(("remote_account", None)),
            _ => None,
        };
        if let Some((field, slot)) = string_field {
            return match (v, slot) {
                (Value::String(s), Some(slot)) => {
                    *slot = s;
                    Ok(())
                }
                (Value::String(_), None) => Ok(()),
                (other, _) => Err(info_type_err(field, "string", &other, raw)),
            };
        }
        let opt_string: Option<(&'static str, &mut Option<String>)> = match key.as_str() {
            "git_commit" => Some(("git_commit", &mut self.git_commit)),
            "ip" => Some(("ip", &mut self.ip)),
            "client_ip" => Some(("client_ip", &mut self.client_ip)),
            "nonce" => Some(("nonce", &mut self.nonce)),
            "cluster" => Some(("cluster", &mut self.cluster)),
            _ => None,
        };
        if let Some((field, slot)) = opt_string {
            return match v {
                Value::String(s) => {
                    *slot = Some(s);
                    Ok(())
                }
                other => Err(info_type_err(field, "string", &other, raw)),
            };
        }
        let mut ignored = false;
        let bool_field: Option<(&'static str, &mut bool)> = match key.as_str() {
            "headers" => Some(("headers", &mut self.headers)),
            "auth_required" => Some(("auth_required", &mut self.auth_required)),
            "tls_required" => Some(("tls_required", &mut self.tls_required)),
            "tls_verify" => Some(("tls_verify", &mut self.tls_verify)),
            "tls_available" => Some(("tls_available", &mut self.tls_available)),
            "jetstream" => Some(("jetstream", &mut self.jetstream)),
            "cluster_dynamic" => Some(("cluster_dynamic", &mut self.cluster_dynamic)),
            "ldm" => Some(("ldm", &mut self.ldm)),
            "lnoc" => Some(("lnoc", &mut self.lnoc)),
            "info_on_connect" => Some(("info_on_connect", &mut self.info_on_connect)),
            "connect_info" => Some(("connect_info", &mut self.connect_info)),
            "gateway_nrp" => Some(("gateway_nrp", &mut ignored)),
            "gateway_iom" => Some(("gateway_iom", &mut ignored)),
            _ => None,
        };
        if let Some((field, slot)) = bool_field {
            return match v {
                Value::Bool(b) => {
                    *slot = b;
                    Ok(())
                }
                other => Err(info_type_err(field, "bool", &other, raw)),
            };
        }
        match key.as_str() {
            // Go `int` (64-bit).
            "proto" => {
                let p = v
                    .as_i64()
                    .ok_or_else(|| info_type_err("proto", "int", &v, raw))?;
                self.proto = p.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
                Ok(())
            }
            "port" => {
                let p = v
                    .as_i64()
                    .ok_or_else(|| info_type_err("port", "int", &v, raw))?;
                self.port = u16::try_from(p).unwrap_or(0);
                Ok(())
            }
            "max_payload" => {
                let m = v
                    .as_i64()
                    .filter(|m| i32::try_from(*m).is_ok())
                    .ok_or_else(|| info_type_err("max_payload", "int32", &v, raw))?;
                self.max_payload = m;
                Ok(())
            }
            "client_id" => {
                self.client_id = v
                    .as_u64()
                    .ok_or_else(|| info_type_err("client_id", "uint64", &v, raw))?;
                Ok(())
            }
            "gateway_cmd" => match v.as_u64() {
                Some(c) if c <= u8::MAX as u64 => Ok(()),
                _ => Err(info_type_err("gateway_cmd", "uint8", &v, raw)),
            },
            "gateway_cmd_payload" => match &v {
                Value::String(s) if is_std_base64(s) => Ok(()),
                Value::Array(items)
                    if items
                        .iter()
                        .all(|i| i.is_null() || i.as_u64().is_some_and(|b| b <= 255)) =>
                {
                    Ok(())
                }
                _ => Err(info_type_err("gateway_cmd_payload", "[]uint8", &v, raw)),
            },
            "connect_urls" => {
                self.connect_urls = go_string_slice("connect_urls", v)?;
                Ok(())
            }
            "ws_connect_urls" => {
                self.ws_connect_urls = go_string_slice("ws_connect_urls", v)?;
                Ok(())
            }
            "gateway_urls" | "leafnode_urls" => {
                let field = if key == "gateway_urls" {
                    "gateway_urls"
                } else {
                    "leafnode_urls"
                };
                go_string_slice(field, v).map(|_| ())
            }
            // `*SubjectPermission`: an object whose `allow`/`deny` are
            // string lists.
            "import" | "export" => {
                let field = if key == "import" { "import" } else { "export" };
                let Value::Object(m) = v else {
                    return Err(info_type_err(field, "server.SubjectPermission", &v, raw));
                };
                let mut perm = SubjectPerm::default();
                for (k, item) in m {
                    let k = fold_key(&k);
                    if (k == "allow" || k == "deny") && !item.is_null() {
                        let list =
                            go_string_slice(if k == "allow" { "allow" } else { "deny" }, item)?;
                        if k == "allow" {
                            perm.allow = list;
                        } else {
                            perm.deny = list;
                        }
                    }
                }
                if field == "import" {
                    self.import = Some(perm);
                } else {
                    self.export = Some(perm);
                }
                Ok(())
            }
            // Our extension: nats-server has no such field and ignores it,
            // so a value of another type is ignored here too.
            "scion_connect_urls" => {
                if let Ok(urls) = go_string_slice("scion_connect_urls", v) {
                    self.scion_connect_urls = urls;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Streams the members of a JSON object in document order to `F` (so
/// duplicate keys resolve like Go: the last one wins). A `null` document
/// calls nothing (Go's `json.Unmarshal` of `null` into a struct is a
/// no-op); any other non-object document is an error.
struct ObjectFields<F>(F);

impl<'de, F: FnMut(&str, serde_json::Value, &str)> serde::de::DeserializeSeed<'de>
    for ObjectFields<F>
{
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: FnMut(&str, serde_json::Value, &str)> serde::de::Visitor<'de> for ObjectFields<F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            // The value as written too: Go words a number by its literal.
            let raw: Box<serde_json::value::RawValue> = map.next_value()?;
            let value: serde_json::Value =
                serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
            (self.0)(&key, value, raw.get());
        }
        Ok(())
    }
}

/// Decodes `json` (invalid UTF-8 in strings becomes U+FFFD, as Go does)
/// and hands each member of the top-level object to `apply`.
fn for_each_field(
    json: &[u8],
    apply: impl FnMut(&str, serde_json::Value, &str),
) -> Result<(), serde_json::Error> {
    let text = String::from_utf8_lossy(json);
    let mut de = serde_json::Deserializer::from_str(&text);
    serde::de::DeserializeSeed::deserialize(ObjectFields(apply), &mut de)?;
    de.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's json.Marshal (nats-server 2.9.10 INFO with server_name "a<b&c>d" reads
    /// `"server_name":"a\u003cb\u0026c\u003ed"`).
    #[test]
    fn protocol_json_is_html_escaped_like_go() {
        let c = RouteConnect {
            echo: true,
            verbose: false,
            pedantic: false,
            user: "u",
            pass: "p<&>\u{2028}\u{2029}é",
            tls_required: false,
            headers: true,
            name: "N",
            cluster: "a<b&c>d",
            cluster_dynamic: false,
            lnoc: true,
        };
        let line = String::from_utf8(c.to_line()).expect("utf-8");
        assert!(
            line.contains(r#""pass":"p\u003c\u0026\u003e\u2028\u2029é""#),
            "{line}"
        );
        assert!(
            line.contains(r#""cluster":"a\u003cb\u0026c\u003ed""#),
            "{line}"
        );
        let back: serde_json::Value =
            serde_json::from_str(line.trim_start_matches("CONNECT ").trim_end()).expect("JSON");
        assert_eq!(back["pass"], "p<&>\u{2028}\u{2029}é");
    }

    #[test]
    fn negative_zero_protocol_is_zero_like_go() {
        let mut c = ConnectInfo::default();
        c.merge_client_json(br#"{"protocol":-0}"#).unwrap();
        assert_eq!(c.protocol, 0);
        let e = ConnectInfo::default()
            .merge_client_json(br#"{"protocol":1.0}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "json: cannot unmarshal number 1.0 into Go struct field ClientOpts.protocol of type int"
        );
    }

    #[test]
    fn route_connect_dynamic_key() {
        // route.go connectInfo: `Dynamic bool json:"cluster_dynamic"`.
        let c: ConnectInfo = serde_json::from_slice(br#"{"cluster_dynamic":true}"#).unwrap();
        assert!(c.dynamic);
        let c: ConnectInfo = serde_json::from_slice(br#"{"dynamic":true}"#).unwrap();
        assert!(!c.dynamic);
    }

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

    #[test]
    fn route_info_like_go_unmarshal() {
        // Nothing is required: absent fields stay empty.
        let i = ServerInfo::from_route_json(br#"{"server_id":"A"}"#).unwrap();
        assert_eq!(i.server_id, "A");
        assert!(i.version.is_empty() && i.port == 0 && !i.headers);
        assert_eq!(
            ServerInfo::from_route_json(b"null").unwrap(),
            ServerInfo::default()
        );
        let i = ServerInfo::from_route_json(
            br#"{"SERVER_ID":"B","Port":4248,"port":4249,"headers":null,"x":[1],
                "connect_urls":["a",null],"max_payload":2147483647,"proto":-1,
                "import":{"allow":["x"],"deny":null},"gateway_cmd_payload":"aGk=",
                "scion_connect_urls":5}"#,
        )
        .unwrap();
        assert_eq!((i.server_id.as_str(), i.port), ("B", 4249));
        assert_eq!(i.connect_urls, vec!["a".to_string(), String::new()]);
        assert_eq!((i.max_payload, i.proto), (2147483647, -1));
        // Go's int holds it; no TCP port does.
        assert_eq!(
            ServerInfo::from_route_json(br#"{"port":70000}"#)
                .unwrap()
                .port,
            0
        );
        for bad in [
            &b"[]"[..],
            b"5",
            b"{",
            b"{} x",
            br#"{"port":"4248"}"#,
            br#"{"version":2}"#,
            br#"{"proto":1.5}"#,
            br#"{"max_payload":2147483648}"#,
            br#"{"client_id":-1}"#,
            br#"{"headers":"true"}"#,
            br#"{"connect_urls":"a"}"#,
            br#"{"connect_urls":[1]}"#,
            br#"{"import":5}"#,
            br#"{"export":{"allow":[true]}}"#,
            br#"{"gateway_cmd":256}"#,
            br#"{"gateway_cmd_payload":"a"}"#,
            br#"{"domain":1}"#,
        ] {
            assert!(
                ServerInfo::from_route_json(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let e = ServerInfo::from_route_json(br#"{"port":"x","proto":"y"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "json: cannot unmarshal string into Go struct field Info.port of type int"
        );
    }
}

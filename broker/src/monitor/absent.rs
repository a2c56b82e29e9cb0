//! `/gatewayz`, `/leafz` and `/jsz` for a server without gateways, leaf nodes or
//! JetStream: the documents nats-server 2.9.10 serves then (monitor.go `Gatewayz`,
//! `Leafz`, `JSInfo` with `disabled: true`), so exporters and scripts polling every
//! endpoint get valid, empty answers instead of 404.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::gofmt::GoTime;

/// `/gatewayz` with no gateway configured.
#[derive(Debug, Serialize)]
pub struct Gatewayz {
    pub server_id: String,
    pub now: GoTime,
    pub outbound_gateways: BTreeMap<String, ()>,
    pub inbound_gateways: BTreeMap<String, ()>,
}

/// `/leafz` with no leaf node connection.
#[derive(Debug, Serialize)]
pub struct Leafz {
    pub server_id: String,
    pub now: GoTime,
    pub leafnodes: u32,
    /// `null`, as Go's nil slice.
    pub leafs: Option<Vec<()>>,
}

#[derive(Debug, Default, Serialize)]
pub struct JsConfig {
    pub max_memory: i64,
    pub max_storage: i64,
}

#[derive(Debug, Default, Serialize)]
pub struct JsApi {
    pub total: u64,
    pub errors: u64,
}

/// `/jsz` with JetStream disabled.
#[derive(Debug, Serialize)]
pub struct Jsz {
    pub server_id: String,
    pub now: GoTime,
    pub disabled: bool,
    pub config: JsConfig,
    pub memory: u64,
    pub storage: u64,
    pub reserved_memory: u64,
    pub reserved_storage: u64,
    pub accounts: u64,
    pub ha_assets: u64,
    pub api: JsApi,
    pub streams: u64,
    pub consumers: u64,
    pub messages: u64,
    pub bytes: u64,
}

pub fn gatewayz(id: &str, now: SystemTime) -> Gatewayz {
    Gatewayz {
        server_id: id.to_string(),
        now: GoTime(now),
        outbound_gateways: BTreeMap::new(),
        inbound_gateways: BTreeMap::new(),
    }
}

pub fn leafz(id: &str, now: SystemTime) -> Leafz {
    Leafz {
        server_id: id.to_string(),
        now: GoTime(now),
        leafnodes: 0,
        leafs: None,
    }
}

pub fn jsz(id: &str, now: SystemTime) -> Jsz {
    Jsz {
        server_id: id.to_string(),
        now: GoTime(now),
        disabled: true,
        config: JsConfig::default(),
        memory: 0,
        storage: 0,
        reserved_memory: 0,
        reserved_storage: 0,
        accounts: 0,
        ha_assets: 0,
        api: JsApi::default(),
        streams: 0,
        consumers: 0,
        messages: 0,
        bytes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_documents_have_nats_server_fields() {
        let now = SystemTime::UNIX_EPOCH;
        let g = serde_json::to_value(gatewayz("S", now)).unwrap_or_default();
        assert_eq!(g["outbound_gateways"], serde_json::json!({}));
        let l = serde_json::to_value(leafz("S", now)).unwrap_or_default();
        assert_eq!(
            (l["leafnodes"].as_u64(), l["leafs"].is_null()),
            (Some(0), true)
        );
        let j = serde_json::to_value(jsz("S", now)).unwrap_or_default();
        assert_eq!(j["disabled"], true);
        assert_eq!(j["config"]["max_storage"], 0);
        assert_eq!(j["api"]["errors"], 0);
    }
}

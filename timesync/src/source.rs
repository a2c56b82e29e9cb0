//! `timesync source`: answers NTP-style requests, publishes the `time.system` beacon and
//! announces its quality.

use crate::clock::{realtime_ns, FakeSkew, ReferenceClock};
use crate::core::wire::{
    self, Announce, SyncReply, SyncRequest, BEACON_SUBJECT, HDR_EPOCH, HDR_LEAP, HDR_REQUEST_PATH,
    HDR_SCION_PATH, HDR_SEQ, HDR_SOURCE, HDR_STRATUM, HDR_TX_NS, VERSION,
};
use futures::StreamExt;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Source settings.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub id: String,
    pub stratum: u8,
    pub priority: u8,
    pub leap: u8,
    pub root_delay_ns: i64,
    pub root_dispersion_ns: i64,
    pub beacon_interval: Duration,
    pub announce_interval: Duration,
    pub skew: FakeSkew,
}

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("subscribe to {subject}: {source}")]
    Subscribe {
        subject: String,
        source: async_nats::SubscribeError,
    },
    #[error("subscription closed by the client")]
    Closed,
}

fn beacon_headers(o: &SourceOptions, seq: u64, tx: i64, epoch: u64) -> async_nats::HeaderMap {
    let mut h = async_nats::HeaderMap::new();
    h.insert(HDR_SOURCE, o.id.as_str());
    h.insert(HDR_SEQ, seq.to_string().as_str());
    h.insert(HDR_TX_NS, tx.to_string().as_str());
    h.insert(HDR_STRATUM, o.stratum.to_string().as_str());
    h.insert(HDR_LEAP, o.leap.to_string().as_str());
    h.insert(HDR_EPOCH, epoch.to_string().as_str());
    h
}

/// Run the source until `shutdown` flips to true.
pub async fn run_source(
    client: async_nats::Client,
    opts: SourceOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SourceError> {
    let clock = ReferenceClock::new(opts.skew);
    let epoch = (realtime_ns() / 1_000_000).max(0) as u64;
    let started = tokio::time::Instant::now();
    let subject = wire::sync_subject(&opts.id);
    let mut sub =
        client
            .subscribe(subject.clone())
            .await
            .map_err(|source| SourceError::Subscribe {
                subject: subject.clone(),
                source,
            })?;
    // Make sure the subscription is registered before anyone is told we exist.
    if let Err(err) = client.flush().await {
        warn!(%err, "flush after subscribe failed");
    }
    let mut beacon = tokio::time::interval(opts.beacon_interval);
    let mut announce = tokio::time::interval(opts.announce_interval);
    let announce_subject = wire::announce_subject(&opts.id);
    let (mut seq, mut served) = (0u64, 0u64);
    info!(id = opts.id, subject, "time source started");
    loop {
        tokio::select! {
            msg = sub.next() => {
                let Some(msg) = msg else { return Err(SourceError::Closed) };
                let t2 = clock.now();
                let Some(reply_to) = msg.reply else { continue };
                let req = match SyncRequest::decode(&msg.payload) {
                    Ok(r) => r,
                    Err(err) => {
                        debug!(%err, "bad sync request");
                        continue;
                    }
                };
                let mut rep = SyncReply {
                    v: VERSION,
                    nonce: req.nonce,
                    t1: req.t1,
                    t2,
                    t3: 0,
                    source: opts.id.clone(),
                    stratum: opts.stratum,
                    leap: opts.leap,
                    root_delay_ns: opts.root_delay_ns,
                    root_dispersion_ns: opts.root_dispersion_ns,
                    epoch,
                };
                // Echo the path the request came over (set by the last SCION hop) so the
                // follower sees a change of either leg, not only of the reply's. Built
                // before t3 so the work counts on neither leg.
                let echo = msg.headers.as_ref().and_then(|h| h.get(HDR_SCION_PATH)).map(|v| {
                    let mut h = async_nats::HeaderMap::new();
                    h.insert(HDR_REQUEST_PATH, v.as_str());
                    h
                });
                rep.t3 = clock.now();
                served += 1;
                let sent = match echo {
                    Some(h) => client.publish_with_headers(reply_to, h, rep.encode().into()).await,
                    None => client.publish(reply_to, rep.encode().into()).await,
                };
                if let Err(err) = sent {
                    debug!(%err, "reply publish failed");
                }
            }
            _ = beacon.tick() => {
                seq += 1;
                let tx = clock.now();
                let h = beacon_headers(&opts, seq, tx, epoch);
                if let Err(err) = client
                    .publish_with_headers(BEACON_SUBJECT, h, wire::beacon_payload(tx).into())
                    .await
                {
                    debug!(%err, "beacon publish failed");
                }
            }
            _ = announce.tick() => {
                let a = Announce {
                    id: opts.id.clone(),
                    subject: subject.clone(),
                    stratum: opts.stratum,
                    priority: opts.priority,
                    leap: opts.leap,
                    root_delay_ns: opts.root_delay_ns,
                    root_dispersion_ns: opts.root_dispersion_ns,
                    epoch,
                    beacon_interval_ms: opts.beacon_interval.as_millis() as u64,
                    uptime_s: started.elapsed().as_secs(),
                    served,
                };
                match serde_json::to_vec(&a) {
                    Ok(body) => {
                        if let Err(err) = client.publish(announce_subject.clone(), body.into()).await {
                            debug!(%err, "announce publish failed");
                        }
                    }
                    Err(err) => warn!(%err, "announce encoding failed"),
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    Ok(())
}

//! `timesync follow`: the async driver around [`crate::core::Engine`].
//!
//! One task owns the engine. Each request runs in its own small task that reads t1 right
//! before publishing and t4 right after the reply resolves, then reports back over a bounded
//! channel; the owner feeds the engine and carries out its actions on the clock.

use crate::clock::{mono_raw_ns, realtime_ns, ClockError, DisciplinedClock};
use crate::core::engine::{Reply, RequestFailure};
use crate::core::sample::ReplyTimes;
use crate::core::wire::{
    self, FollowerStatus, SyncReply, SyncRequest, HDR_REQUEST_PATH, HDR_SCION_PATH, VERSION,
};
use crate::core::{Action, ClockAction, Engine, EngineConfig, SourceConfig, SyncState};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Follower settings.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    pub id: String,
    pub sources: Vec<SourceConfig>,
    pub engine: EngineConfig,
    pub status_interval: Duration,
}

#[derive(Debug, Error)]
pub enum FollowError {
    #[error("no sources configured or discovered")]
    NoSources,
    #[error("clock: {0}")]
    Clock(#[from] ClockError),
}

enum Event {
    Reply {
        source: String,
        nonce: u64,
        t1: i64,
        reply: Reply,
        t4: i64,
        mono: i64,
    },
    Failure {
        source: String,
        nonce: u64,
        why: RequestFailure,
    },
}

/// Capacity of the request-result channel (a few polls' worth for many sources).
const EVENT_CAPACITY: usize = 256;

fn failure_kind(e: &async_nats::RequestError) -> RequestFailure {
    match e.kind() {
        async_nats::RequestErrorKind::TimedOut => RequestFailure::Timeout,
        async_nats::RequestErrorKind::NoResponders => RequestFailure::NoResponders,
        _ => RequestFailure::Other,
    }
}

fn spawn_request(
    client: &async_nats::Client,
    clock: &Arc<dyn DisciplinedClock>,
    tx: &mpsc::Sender<Event>,
    source: String,
    nonce: u64,
    timeout: Duration,
) {
    let (client, clock, tx) = (client.clone(), clock.clone(), tx.clone());
    tokio::spawn(async move {
        let subject = wire::sync_subject(&source);
        let payload_for = |t1| {
            SyncRequest {
                v: VERSION,
                nonce,
                t1,
            }
            .encode()
        };
        // Read t1 as late as possible: right before the request future starts publishing.
        // (Anything awaited between t1 and the publish would count as outbound delay only
        // and bias the offset by half of it.) The engine learns t1 together with the result.
        let t1 = clock.now();
        let req = async_nats::Request::new()
            .payload(payload_for(t1).into())
            .timeout(Some(timeout));
        let fut = client.send_request(subject, req);
        let res = fut.await;
        let (t4, mono) = (clock.now(), mono_raw_ns());
        let ev = match res {
            Ok(msg) => match SyncReply::decode(&msg.payload) {
                Ok(r) if r.source == source => {
                    let header = |name: &str| {
                        msg.headers
                            .as_ref()
                            .and_then(|h| h.get(name))
                            .map(|v| v.as_str().to_string())
                    };
                    let (path, request_path) = (header(HDR_SCION_PATH), header(HDR_REQUEST_PATH));
                    Event::Reply {
                        source,
                        nonce,
                        t1,
                        reply: Reply {
                            times: ReplyTimes {
                                nonce: r.nonce,
                                t1_echo: r.t1,
                                t2: r.t2,
                                t3: r.t3,
                            },
                            stratum: r.stratum,
                            leap: r.leap,
                            root_delay_ns: r.root_delay_ns,
                            root_dispersion_ns: r.root_dispersion_ns,
                            path,
                            request_path,
                            epoch: r.epoch,
                        },
                        t4,
                        mono,
                    }
                }
                Ok(r) => {
                    warn!(
                        source,
                        replied = r.source,
                        "reply from an unexpected source"
                    );
                    Event::Failure {
                        source,
                        nonce,
                        why: RequestFailure::Other,
                    }
                }
                Err(err) => {
                    warn!(source, %err, "undecodable reply");
                    Event::Failure {
                        source,
                        nonce,
                        why: RequestFailure::Other,
                    }
                }
            },
            Err(err) => {
                debug!(source, %err, "request failed");
                Event::Failure {
                    source,
                    nonce,
                    why: failure_kind(&err),
                }
            }
        };
        let _ = tx.send(ev).await;
    });
}

/// Snapshot of the follower for status messages and metrics.
pub fn status(
    id: &str,
    address: &str,
    engine: &Engine,
    clock: &dyn DisciplinedClock,
) -> FollowerStatus {
    FollowerStatus {
        id: id.to_string(),
        address: address.to_string(),
        mode: clock.mode().to_string(),
        tracking: engine.tracking(mono_raw_ns()),
        host_offset_ns: clock.now() - realtime_ns(),
        at_unix_ns: realtime_ns(),
    }
}

/// Run the follower until `shutdown` flips to true.
pub async fn run_follow(
    client: async_nats::Client,
    clock: Arc<dyn DisciplinedClock>,
    opts: FollowOptions,
    status_out: watch::Sender<Option<FollowerStatus>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), FollowError> {
    if opts.sources.is_empty() {
        return Err(FollowError::NoSources);
    }
    let now = mono_raw_ns();
    let mut engine = Engine::new(
        opts.engine,
        opts.sources.clone(),
        now,
        clock.initial_frequency(),
        rand::random(),
    );
    let timeout = Duration::from_nanos(opts.engine.request_timeout_ns.max(1) as u64);
    let (tx, mut rx) = mpsc::channel::<Event>(EVENT_CAPACITY);
    let status_subject = wire::status_subject(&opts.id);
    let mut status_tick = tokio::time::interval(opts.status_interval);
    status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut timer_at = now;
    let mut last_state = engine.discipline().state();
    // A clock error ends the follower, after the clean-up below.
    let mut failed: Option<FollowError> = None;
    // Whether we set the clock's frequency (then we leave it at the estimate on exit).
    let mut steered = false;
    let mut last_selected: Option<String> = None;
    let mut last_jumps = 0;
    let mut last_restarts: std::collections::HashMap<String, u64> = Default::default();
    info!(id = opts.id, mode = clock.mode(), sources = ?opts.sources.iter().map(|s| &s.id).collect::<Vec<_>>(), "follower started");
    loop {
        let wait = Duration::from_nanos((timer_at - mono_raw_ns()).max(0) as u64);
        let actions = tokio::select! {
            _ = tokio::time::sleep(wait) => engine.handle_timer(mono_raw_ns()),
            ev = rx.recv() => match ev {
                Some(Event::Reply { source, nonce, t1, reply, t4, mono }) => {
                    engine.handle_transmitted(&source, nonce, t1);
                    match engine.handle_reply(mono, &source, nonce, reply, t4) {
                        Ok(a) => a,
                        Err(err) => {
                            warn!(source, %err, "rejected sample");
                            Vec::new()
                        }
                    }
                }
                Some(Event::Failure { source, nonce, why }) => {
                    engine.handle_failure(mono_raw_ns(), &source, nonce, why)
                }
                // We hold a sender ourselves, so the channel cannot close.
                None => Vec::new(),
            },
            _ = status_tick.tick() => {
                // Read each time: with retry_on_initial_connect the INFO arrives after we start.
                let address = client.server_info().client_ip;
                let st = status(&opts.id, &address, &engine, clock.as_ref());
                match serde_json::to_vec(&st) {
                    Ok(body) => {
                        if let Err(err) = client.publish(status_subject.clone(), body.into()).await {
                            debug!(%err, "status publish failed");
                        }
                    }
                    Err(err) => warn!(%err, "status encoding failed"),
                }
                let _ = status_out.send(Some(st));
                Vec::new()
            }
            _ = shutdown.changed() => break,
        };
        for action in actions {
            match action {
                Action::Send { source, nonce } => {
                    spawn_request(&client, &clock, &tx, source, nonce, timeout)
                }
                Action::Clock(c) => {
                    if let ClockAction::Step { offset } = c {
                        info!(offset_s = offset, "stepping clock (startup)");
                    }
                    steered |= matches!(c, ClockAction::SetFrequency { .. });
                    if let Err(e) = clock.apply(c) {
                        failed = Some(e.into());
                        break;
                    }
                }
                Action::SetTimer { at } => timer_at = at,
            }
        }
        if failed.is_some() {
            break;
        }
        let state = engine.discipline().state();
        if state != last_state {
            info!(
                from = last_state.as_str(),
                to = state.as_str(),
                "sync state changed"
            );
            last_state = state;
        }
        // Source restarts and phase jumps change what the clock follows: say so.
        let jumps = engine.discipline().jumps();
        if jumps != last_jumps {
            warn!(
                offset_s = engine.discipline().offset(),
                "reference offset jumped and persisted: following it by slewing the phase (frequency kept)"
            );
            last_jumps = jumps;
        }
        for (id, restarts) in engine.restarts() {
            let seen = last_restarts.entry(id.to_string()).or_insert(0);
            if restarts != *seen {
                warn!(source = id, "source restarted (new epoch): its filters start over, the clock re-acquires it");
                *seen = restarts;
            }
        }
        let sel = engine.selected().map(str::to_string);
        if sel != last_selected {
            info!(from = ?last_selected, to = ?sel, "selected source changed");
            last_selected = sel;
        }
    }
    // Leave a disciplined clock at the oscillator's estimated frequency error, without the
    // transient phase slew (up to 500 ppm) that would otherwise run on after we exit.
    if clock.mode() == "discipline"
        && (steered || engine.discipline().state() != SyncState::Startup)
    {
        let freq = engine.discipline().estimated_frequency();
        info!(
            freq_ppm = freq * 1e6,
            "leaving the clock at the estimated oscillator frequency (phase slew removed)"
        );
        let left = clock.apply(ClockAction::SetFrequency { freq });
        if failed.is_none() {
            left?;
        } else if let Err(e) = left {
            warn!(%e, "could not leave the clock at the estimated frequency");
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

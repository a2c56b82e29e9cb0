//! HTTP monitoring endpoints (nats-server `server/monitor.go`).
//!
//! A small HTTP/1.1 server on tokio (no web framework): any method (as Go's
//! ServeMux; HEAD without a body), unclean paths redirected, Host required on 1.1,
//! keep-alive, bounded request heads, bounded time per request and a
//! bounded number of connections served at once. Endpoints:
//!
//! - `/` — an HTML index of the endpoints (nats-server `HandleRoot`).
//! - `/varz`, `/connz`, `/routez`, `/subsz` (alias `/subscriptionsz`),
//!   `/healthz` — nats-server 2.9.10's JSON: field names, order, units,
//!   query parameters and 400 error texts. `?callback=f` wraps the JSON
//!   as JSONP like nats-server's `ResponseHandler`.
//! - `/metrics` — Prometheus text, names in [`metrics`].
//! - `/pathz` — SCION paths per peer ([`pathz`]); a TCP-only server
//!   answers the same document with no destinations.
//!
//! - `/gatewayz`, `/leafz`, `/jsz` — nats-server's documents for a server
//!   without those features ([`absent`]).
//!
//! Not served (404): nats-server's `/accountz`, `/accstatz`, `/stacksz`,
//! `/ipqueuesz` (account-level views of accounts we do not have).

pub mod absent;
pub mod connz;
pub mod gofmt;
pub mod http;
pub mod metrics;
pub mod pathz;
pub mod procstat;
pub mod routez;
pub mod scion_view;
pub mod subsz;
pub mod varz;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, error};

use crate::proto::ConnKind;
use crate::server::{lock, ServerState, PROTO, VERSION};
use http::{decode_bool, decode_subs, parse_request, HttpError, Request, Response, SubsLevel};
use routez::RouteInfo;
use subsz::SubDetail;

/// Connections served at once; more wait in the accept queue.
pub const MAX_CONCURRENT: usize = 32;
/// Time to receive a complete first request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time allowed between keep-alive requests.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to write one response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests served on one connection before we close it.
const MAX_REQUESTS_PER_CONN: usize = 100;
/// How long an accepted connection waits for a free slot before it gets 503.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// Path names as nats-server counts them in `http_req_stats`.
const ROOT: &str = "/";
const VARZ: &str = "/varz";
const CONNZ: &str = "/connz";
const ROUTEZ: &str = "/routez";
const SUBSZ: &str = "/subsz";
const HEALTHZ: &str = "/healthz";
const METRICS: &str = "/metrics";
const PATHZ: &str = "/pathz";
const GATEWAYZ: &str = "/gatewayz";
const LEAFZ: &str = "/leafz";
const JSZ: &str = "/jsz";

/// State of the monitoring server.
struct Monitor {
    state: Arc<ServerState>,
    req_stats: Mutex<BTreeMap<String, u64>>,
    cpu: procstat::CpuSampler,
}

/// Serves the monitoring endpoints until the server shuts down.
/// `tls`: the monitoring port is nats-server's `https` one (the client TLS certificate,
/// no client certificates asked for, server.go startMonitoring).
pub async fn serve(
    state: Arc<ServerState>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let mon = Arc::new(Monitor {
        state: state.clone(),
        req_stats: Mutex::new(BTreeMap::new()),
        cpu: procstat::CpuSampler::default(),
    });
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    // Dropping the set (when this task is aborted or returns) aborts every
    // connection task with it.
    let mut conns = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        while conns.try_join_next().is_some() {}
        if state.shutting_down.load(Ordering::Acquire) {
            return;
        }
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = state.shutdown.notified() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                stream
            }
            Err(e) => {
                error!(
                    "monitoring: accept error: {e}, sleeping {}ms",
                    backoff.as_millis()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        match tokio::time::timeout(SLOT_WAIT, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => {
                let mon = mon.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        None => serve_conn(&mon, stream).await,
                        Some(acceptor) => {
                            // Go's http.Server has no handshake bound of its own; the
                            // first request's head timeout bounds it here.
                            let shake = tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream));
                            match shake.await {
                                Ok(Ok(s)) => serve_conn(&mon, s).await,
                                Ok(Err(e)) => debug!("monitoring: TLS handshake error: {e}"),
                                Err(_) => debug!("monitoring: TLS handshake timed out"),
                            }
                        }
                    }
                    drop(permit);
                });
            }
            _ => {
                let busy = Response::text(503, "too many monitoring requests\n");
                let mut stream = stream;
                let bytes = busy.encode(false, false, &gofmt::http_date(SystemTime::now()));
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await;
            }
        }
    }
}

/// Reads requests from one connection and answers them.
async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(mon: &Monitor, mut stream: S) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    for n in 0..MAX_REQUESTS_PER_CONN {
        let wait = if n == 0 { HEAD_TIMEOUT } else { IDLE_TIMEOUT };
        let req = match read_request(&mut stream, &mut buf, wait).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                debug!("monitoring: bad request: {e}");
                let resp = Response::text(e.status(), format!("{e}\n"));
                let bytes = resp.encode(false, false, &gofmt::http_date(SystemTime::now()));
                if let Ok(Ok(())) =
                    tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await
                {
                    lingering_close(&mut stream).await;
                }
                return;
            }
        };
        let keep = req.keep_alive && n + 1 < MAX_REQUESTS_PER_CONN;
        let head_only = req.method == "HEAD";
        // nats-server's handlers (Go ServeMux) answer any method alike.
        let resp = mon.dispatch(&req);
        let bytes = resp.encode(head_only, keep, &gofmt::http_date(SystemTime::now()));
        match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        if !keep {
            lingering_close(&mut stream).await;
            return;
        }
    }
}

/// Half-closes, then reads and discards what the peer still sends for a
/// short while. Closing with unread input makes the kernel send RST, which
/// can destroy the response still in flight (RFC 9112 §9.6, "lingering
/// close"). Bounded in time and bytes.
async fn lingering_close<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    const LINGER: Duration = Duration::from_secs(1);
    const MAX_DRAIN: usize = 256 * 1024;
    let _ = tokio::time::timeout(LINGER, stream.shutdown()).await;
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut drained = 0;
    let mut chunk = [0u8; 4096];
    while drained < MAX_DRAIN {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => return,
        }
    }
}

/// Reads until one request head is complete. `Ok(None)` when the peer
/// closed or went quiet before sending a complete head.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    wait: Duration,
) -> Result<Option<Request>, HttpError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some((req, used)) = parse_request(buf)? {
            buf.drain(..used);
            return Ok(Some(req));
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Ok(None),
            Ok(Ok(k)) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

fn pretty<T: Serialize>(v: &T) -> Vec<u8> {
    gofmt::to_go_json_pretty(v)
}

/// nats-server `ResponseHandler`: JSON, or JSONP when `callback` is given.
/// Unlike nats-server we only accept a JavaScript identifier path as the
/// callback, so the endpoint cannot be made to echo arbitrary script.
fn respond(q: &http::Query, body: Vec<u8>) -> Response {
    let cb = q.get("callback");
    if cb.is_empty() {
        return Response::json(body);
    }
    let ok = cb.len() <= 128
        && cb
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.');
    if !ok {
        return Response::text(400, "invalid callback name");
    }
    let mut out = Vec::with_capacity(body.len() + cb.len() + 2);
    out.extend_from_slice(cb.as_bytes());
    out.push(b'(');
    out.extend_from_slice(&body);
    out.push(b')');
    Response::new(200, "application/javascript", out)
}

impl Monitor {
    fn count(&self, path: &str) {
        *lock(&self.req_stats).entry(path.to_string()).or_insert(0) += 1;
    }

    fn dispatch(&self, req: &Request) -> Response {
        let q = &req.query;
        let now = SystemTime::now();
        let bad = |e: http::ParamError| Response::text(400, e.0);
        let clean = http::clean_path(&req.path);
        if clean != req.path {
            // ServeMux redirects to URL{Path, RawQuery}.String(): the path escaped.
            let path = http::escape_path(&clean);
            let loc = if req.raw_query.is_empty() {
                path
            } else {
                format!("{path}?{}", req.raw_query)
            };
            return Response::moved_permanently(&loc, &req.method);
        }
        match req.path.as_str() {
            ROOT => {
                self.count(ROOT);
                Response::new(200, http::HTML, root_page().into_bytes())
            }
            VARZ => {
                self.count(VARZ);
                respond(q, pretty(&self.varz(now)))
            }
            CONNZ => {
                let o = match connz::parse_options(q) {
                    Ok(o) => o,
                    Err(e) => return bad(e),
                };
                self.count(CONNZ);
                match connz::connz(&self.state, &o, now) {
                    Ok(c) => respond(q, pretty(&c)),
                    Err(e) => bad(e),
                }
            }
            ROUTEZ => {
                let subs = match decode_subs(q) {
                    Ok(s) => s,
                    Err(e) => return bad(e),
                };
                self.count(ROUTEZ);
                let infos = route_infos(&self.state, subs);
                let opts = self.state.opts();
                let perms = opts.cluster.permissions.as_ref();
                let perms = (
                    perms
                        .and_then(|p| p.publish.as_ref())
                        .map(crate::server::route::subject_perm),
                    perms
                        .and_then(|p| p.subscribe.as_ref())
                        .map(crate::server::route::subject_perm),
                );
                respond(
                    q,
                    pretty(&routez::routez(&self.state.id, perms, infos, subs, now)),
                )
            }
            SUBSZ | "/subscriptionsz" => {
                // nats-server counts /subsz before decoding its parameters.
                self.count(SUBSZ);
                let res = subsz::parse_options(q).and_then(|o| subsz::subsz(&self.state, &o, now));
                match res {
                    Ok(s) => respond(q, pretty(&s)),
                    Err(e) => bad(e),
                }
            }
            HEALTHZ => {
                self.count(HEALTHZ);
                // Decoded for nats-server's 400 on bad values; JetStream does
                // not exist here, so they change nothing.
                for p in ["js-enabled", "js-enabled-only", "js-server-only"] {
                    if let Err(e) = decode_bool(q, p) {
                        return bad(e);
                    }
                }
                if !self.state.lame_duck.load(Ordering::Acquire) {
                    return respond(q, br#"{"status":"ok"}"#.to_vec());
                }
                // Lame duck mode closed the client listener: nats-server's
                // readyForConnections fails on "server", HandleHealthz logs it and
                // answers 503 (written before the content type is set, so Go's
                // sniffed text/plain goes out, JSONP included).
                let err = "failed to be ready for connections after 1ms: server";
                tracing::warn!("Healthcheck failed: {}", gofmt::go_quote(err));
                let body = format!(r#"{{"status":"error","error":"{err}"}}"#).into_bytes();
                let mut resp = respond(q, body);
                if resp.status == 200 {
                    resp.status = 503;
                    resp.content_type = http::TEXT;
                }
                resp
            }
            METRICS => {
                self.count(METRICS);
                let v = self.varz(now);
                let start = self.state.start_time;
                let start_secs = start
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                let up = self.state.start_instant.elapsed().as_secs_f64();
                let sl = self
                    .state
                    .sublist
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .stats();
                let routes = route_infos(&self.state, SubsLevel::None);
                let text = metrics::render(
                    &v,
                    up,
                    start_secs,
                    &subsz::StatsJson::from(&sl),
                    &routes,
                    &scion_view::pathz_dests(&self.state),
                    &scion_view::failover_gaps(&self.state),
                );
                Response::new(200, http::PROMETHEUS, text.into_bytes())
            }
            PATHZ => {
                self.count(PATHZ);
                let dests = scion_view::pathz_dests(&self.state);
                respond(q, pretty(&pathz::pathz(&self.state.id, dests, now)))
            }
            // Parameters decoded as monitor.go does, for its 400s on bad values.
            GATEWAYZ => {
                self.count(GATEWAYZ);
                if let Err(e) = decode_bool(q, "accs") {
                    return bad(e);
                }
                respond(q, pretty(&absent::gatewayz(&self.state.id, now)))
            }
            LEAFZ => {
                self.count(LEAFZ);
                if let Err(e) = decode_bool(q, "subs") {
                    return bad(e);
                }
                respond(q, pretty(&absent::leafz(&self.state.id, now)))
            }
            JSZ => {
                self.count(JSZ);
                for p in ["accounts", "streams", "consumers", "config"] {
                    if let Err(e) = decode_bool(q, p) {
                        return bad(e);
                    }
                }
                for p in ["offset", "limit"] {
                    if let Err(e) = http::decode_int(q, p) {
                        return bad(e);
                    }
                }
                match decode_bool(q, "leader-only") {
                    Err(e) => return bad(e),
                    // monitor.go Jsz with JetStream off: "filtered response: not leader".
                    Ok(true) => return Response::text(400, "filtered response: not leader"),
                    Ok(false) => {}
                }
                respond(q, pretty(&absent::jsz(&self.state.id, now)))
            }
            _ => Response::not_found(),
        }
    }

    fn varz(&self, now: SystemTime) -> varz::Varz {
        let st = &self.state;
        let opts = st.opts();
        let info = st.client_info(0, "");
        let cpu = match procstat::read_cpu() {
            Some((ticks, alive)) => self.cpu.update(Instant::now(), ticks, alive),
            None => 0.0,
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let connections = lock(&st.clients)
            .values()
            .filter(|c| c.kind == ConnKind::Client)
            .count();
        let subscriptions = st.sublist.read().unwrap_or_else(|e| e.into_inner()).count();
        let rt = varz::Runtime {
            server_id: st.id.clone(),
            server_name: st.name.clone(),
            version: VERSION.to_string(),
            proto: PROTO,
            go: info.go,
            host: info.host,
            port: info.port,
            // The server's own flag: only a client's INFO drops it for a `no_auth_user`
            // (server.go createClient), /varz keeps it (monitor.go takes s.info's).
            auth_required: st.auth().expects_connect(),
            connect_urls: info.connect_urls,
            http_port: lock(&st.http_addr).map(|a| a.port()).unwrap_or(0),
            ws_port: lock(&st.ws_addr).map(|a| a.port()).unwrap_or(0),
            cluster_name: if st.cluster.enabled {
                st.cluster.name()
            } else {
                String::new()
            },
            // The bound route port: TCP listener, else the SCION route endpoint.
            cluster_port: lock(&st.cluster.listen_addr)
                .map(|a| a.port())
                .or_else(|| {
                    lock(&st.scion)
                        .route_endpoint
                        .as_ref()
                        .map(|e| e.local_addr().port)
                })
                .unwrap_or(0),
            start: Some(st.start_time),
            now: Some(now),
            uptime: st.start_instant.elapsed(),
            mem: procstat::read_rss().unwrap_or(0),
            cores,
            cpu,
            connections,
            total_connections: st.stats.total_connections.load(Ordering::Relaxed),
            routes: st.cluster.num_routes(),
            in_msgs: st.stats.in_msgs.load(Ordering::Relaxed),
            out_msgs: st.stats.out_msgs.load(Ordering::Relaxed),
            in_bytes: st.stats.in_bytes.load(Ordering::Relaxed),
            out_bytes: st.stats.out_bytes.load(Ordering::Relaxed),
            slow_consumers: st.stats.slow_consumers.load(Ordering::Relaxed),
            subscriptions: subscriptions.min(u32::MAX as usize) as u32,
            http_req_stats: lock(&self.req_stats).clone(),
            config_load_time: Some(*lock(&st.config_load_time)),
        };
        varz::varz(&opts, rt)
    }
}

/// The server's registered routes as the monitor shows them; routes over
/// SCION carry their peer address, active path and switch count.
pub fn route_infos(state: &ServerState, subs: SubsLevel) -> Vec<RouteInfo> {
    state
        .cluster
        .routes()
        .iter()
        .map(|r| {
            let s = r.shared.snapshot(state, None);
            let (import, export) = {
                let m = lock(&r.meta);
                let info = m.info.as_ref();
                (
                    info.and_then(|i| i.import.clone()),
                    info.and_then(|i| i.export.clone()),
                )
            };
            let (remote_id, did_solicit, is_configured, rtt, scion) = {
                let m = lock(&r.meta);
                let scion = m
                    .scion
                    .as_ref()
                    .map(|p| scion_view::link_info(&p.endpoint, p.remote));
                (
                    m.remote_id.clone(),
                    m.did_solicit,
                    m.is_configured,
                    m.rtt,
                    scion,
                )
            };
            let details = if subs == SubsLevel::None {
                Vec::new()
            } else {
                let mut d: Vec<SubDetail> = lock(&r.shared.subs)
                    .values()
                    .map(|s| SubDetail::of(s))
                    .collect();
                d.sort_by(|a, b| a.subject.cmp(&b.subject).then(a.sid.cmp(&b.sid)));
                d
            };
            RouteInfo {
                rid: s.cid,
                remote_id,
                did_solicit,
                is_configured,
                ip: s.ip,
                port: s.port,
                start: s.start,
                last_activity: s.last_activity.max(s.start),
                rtt: rtt.or(s.rtt),
                import,
                export,
                pending_size: s.pending_bytes,
                in_msgs: s.in_msgs,
                out_msgs: s.out_msgs,
                in_bytes: s.in_bytes,
                out_bytes: s.out_bytes,
                num_subs: s.subscriptions.min(u32::MAX as usize) as u32,
                subs: details,
                scion,
            }
        })
        .collect()
}

/// The index page (nats-server `HandleRoot`, without the logo).
fn root_page() -> String {
    let links: String = [
        (VARZ, "General"),
        (CONNZ, "Connections"),
        (SUBSZ, "Subscriptions"),
        (ROUTEZ, "Routes"),
        (HEALTHZ, "Health Probe"),
        (METRICS, "Prometheus Metrics"),
    ]
    .iter()
    .map(|(p, name)| format!("  <a href=.{p}>{name}</a><br/>\n"))
    .collect();
    format!(
        "<html lang=\"en\">\n<head><title>nats-scion broker</title></head>\n<body>\n  <h1>nats-scion broker</h1>\n  <p>NATS server v{VERSION} compatible (broker {})</p>\n{links}  <a href=https://docs.nats.io/running-a-nats-service/nats_admin/monitoring>Help</a>\n</body>\n</html>\n",
        crate::server::BROKER_VERSION
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonp_wraps_and_rejects_script() {
        let r = respond(&http::Query::parse("callback=cb"), b"{}".to_vec());
        assert_eq!(r.body, b"cb({})");
        assert_eq!(r.content_type, "application/javascript");
        let r = respond(&http::Query::parse("callback=alert(1)%3B"), b"{}".to_vec());
        assert_eq!(r.status, 400);
        let r = respond(&http::Query::parse(""), b"{}".to_vec());
        assert_eq!(r.content_type, http::JSON);
    }

    #[test]
    fn root_lists_endpoints() {
        let p = root_page();
        for path in [VARZ, CONNZ, SUBSZ, ROUTEZ, HEALTHZ, METRICS] {
            assert!(p.contains(&format!("href=.{path}>")), "{path}");
        }
    }
}

//! The route handshake: CONNECT and INFO from the peer, registration,
//! gossip of other servers and implicit routes (route.go
//! `processRouteConnect`, `processRouteInfo`, `processImplicitRoute`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{debug, error, info};

use super::{connect_to_route, join_host_port, Close, RouteConn, Solicit};
use crate::options::RouteTarget;
use crate::proto::encode;
use crate::proto::json::{ConnectInfo, ServerInfo};
use crate::server::closed::ClosedState;
use crate::server::cluster::send_async_info_to_clients;
use crate::server::{lock, ServerState};

impl RouteConn {
    pub(super) fn handle_connect(&mut self, json: &[u8]) -> Result<(), Close> {
        // client.go readLoop logs json.Unmarshal's error as it is.
        let parsed = match crate::proto::json::route_connect_error(json) {
            Some(text) => Err(text),
            None => serde_json::from_slice::<ConnectInfo>(json).map_err(|e| e.to_string()),
        };
        let ci = match parsed {
            Ok(c) => c,
            Err(text) => {
                error!("{} - {}", self.prefix, text);
                return Err(Close(ClosedState::ProtocolViolation));
            }
        };
        if ci.lang.as_deref().is_some_and(|l| !l.is_empty()) {
            let _ = self
                .shared
                .out
                .send(&encode::err_line("attempted to connect to route port"));
            error!("{} - attempted to connect to route port", self.prefix);
            self.close_error = Some("attempted to connect to route port");
            return Err(Close(ClosedState::WrongPort));
        }
        let opts = self.srv.opts();
        if let Some(user) = &opts.cluster.username {
            let ok = ci.user.as_deref() == Some(user.as_str())
                && ci.pass.as_deref().unwrap_or("")
                    == opts.cluster.password.as_deref().unwrap_or("");
            if !ok {
                // client.go authViolation words it by the *client* users and nkeys.
                error!("{} - {}", self.prefix, self.srv.auth().violation_text(&ci));
                let _ = self.shared.out.send(encode::ERR_AUTH_VIOLATION);
                return Err(Close(ClosedState::AuthenticationViolation));
            }
        }
        let ours = self.srv.cluster.name();
        let theirs = ci.cluster.clone().unwrap_or_default();
        if theirs != ours {
            let dynamic = self.srv.cluster.dynamic_name.load(Ordering::Relaxed);
            if dynamic && (!ci.dynamic || ours.as_str() < theirs.as_str()) {
                adopt_cluster_name(&self.srv, &theirs, &self.handle);
                if !ci.dynamic {
                    self.srv
                        .cluster
                        .dynamic_name
                        .store(false, Ordering::Relaxed);
                }
            } else {
                let text = format!(
                    "Rejecting connection, cluster name {:?} does not match {:?}",
                    theirs, ours
                );
                error!("{} - {}", self.prefix, text);
                let _ = self.shared.out.send(&encode::err_line(&text));
                self.close_error = Some("cluster name from remote server conflicts");
                return Err(Close(ClosedState::ClusterNameConflict));
            }
        }
        self.got_connect = true;
        lock(&self.shared.meta).connected = true;
        let mut m = lock(&self.handle.meta);
        m.remote_id = ci.name.clone().unwrap_or_default();
        m.lnoc = ci.lnoc;
        self.shared.headers.store(ci.headers, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn handle_info(&mut self, json: &[u8]) -> Result<(), Close> {
        // Lenient and strict exactly like client.go processInfo's
        // json.Unmarshal into server.Info: nothing is required, wrong types
        // are errors; the read loop then logs the error and closes the route
        // as a Protocol Violation.
        let info = match ServerInfo::from_route_json(json) {
            Ok(i) => i,
            Err(e) => {
                error!("{} - {}", self.prefix, e);
                return Err(Close(ClosedState::ProtocolViolation));
            }
        };
        let srv = self.srv.clone();
        if info.server_id == srv.id {
            lock(&self.handle.meta).remote_id = info.server_id.clone();
            // route.go processRouteInfo closes without a line; the dialer's
            // after-close logs "Detected route to self, ignoring <url>".
            return Err(Close(ClosedState::DuplicateRoute));
        }
        if let Some(theirs) = info.cluster.as_deref().filter(|c| !c.is_empty()) {
            let ours = srv.cluster.name();
            if theirs != ours {
                let dynamic = srv.cluster.dynamic_name.load(Ordering::Relaxed);
                if dynamic && (!info.cluster_dynamic || ours.as_str() < theirs) {
                    adopt_cluster_name(&srv, theirs, &self.handle);
                } else {
                    // route.go processRouteInfo closes without a log line of its own
                    // (the close says "Cluster Name Conflict").
                    return Err(Close(ClosedState::ClusterNameConflict));
                }
            }
        }
        if self.got_info {
            // An async INFO: either gossip about another server, or an update.
            let my_remote = lock(&self.handle.meta).remote_id.clone();
            if !my_remote.is_empty() && my_remote != info.server_id {
                process_implicit_route(&srv, &info);
            } else if info.ldm {
                // The peer is leaving: stop offering its client URLs, TCP and SCION.
                let (urls, scion_urls, ws_urls) = {
                    let mut m = lock(&self.handle.meta);
                    (
                        std::mem::take(&mut m.connect_urls),
                        std::mem::take(&mut m.scion_connect_urls),
                        std::mem::take(&mut m.ws_connect_urls),
                    )
                };
                let a = srv.cluster.update_remote_urls(&urls, false);
                let b = srv.cluster.update_remote_scion_urls(&scion_urls, false);
                let c = srv.cluster.update_remote_ws_urls(&ws_urls, false);
                if (a || b || c) && !srv.opts().cluster.no_advertise {
                    send_async_info_to_clients(&srv, a || b, c);
                }
            } else {
                self.update_remote_route_perms(&info);
            }
            return Ok(());
        }
        // route.go processRouteInfo: an accepted route from a server with our name
        // is refused (names must be unique in a cluster).
        if self.solicit.is_none() && info.server_name == srv.name {
            error!(
                "{} - Remote server has a duplicate name: {:?}",
                self.prefix, info.server_name
            );
            return Err(Close(ClosedState::DuplicateServerName));
        }
        self.got_info = true;
        self.shared.headers.store(info.headers, Ordering::Relaxed);
        {
            let mut m = lock(&self.handle.meta);
            m.remote_id = info.server_id.clone();
            m.remote_name = info.server_name.clone();
            m.remote_port = info.port;
            m.connect_urls = info.connect_urls.clone();
            m.scion_connect_urls = info.scion_connect_urls.clone();
            m.ws_connect_urls = info.ws_connect_urls.clone();
            if m.url.is_none() {
                m.url = Some(format!(
                    "nats-route://{}/",
                    join_host_port(&info.host, info.port)
                ));
            }
            m.info = Some(info.clone());
        }
        let (added, others) = srv.cluster.add_route(self.handle.clone(), &info.server_id);
        if !added {
            debug!(
                "{} - Detected duplicate remote route {:?}",
                self.prefix, info.server_id
            );
            // A TCP route we dialled: the kept route takes over its URL, to be re-dialled
            // when that one closes (route.go addRoute). SCION dialers watch for that
            // themselves (`server::scion::dial_route`).
            let (over_scion, our_url) = {
                let m = lock(&self.handle.meta);
                (m.scion.is_some(), m.url.clone())
            };
            if let (Some(s), Some(kept)) = (&self.solicit, srv.cluster.route_to(&info.server_id)) {
                let mut k = lock(&kept.meta);
                // "Upgrade to solicited": the kept route now counts as the one we
                // dialled (/routez did_solicit, is_configured, url), keeping its
                // remote's connect URLs.
                k.did_solicit = true;
                k.is_configured = s.configured;
                if our_url.is_some() {
                    k.url = our_url;
                }
                if !over_scion {
                    k.retry = Some(s.clone());
                }
            }
            return Err(Close(ClosedState::DuplicateRoute));
        }
        self.registered = true;
        // A path switch between the route's start and now updated no tag (events follow
        // registered routes only).
        let peer = lock(&self.handle.meta).scion.clone();
        super::refresh_path_tag(&srv, &self.shared, peer.as_ref());
        // A reload that removed this route's URL while it was connecting found nothing
        // registered to close (route::apply_route_changes): close it now that it is.
        if let Some(s) = self.solicit.as_ref().filter(|s| s.configured) {
            if !super::route_still_valid(&srv, s) {
                info!("Removed route {}", super::redact_url(&s.url));
                return Err(Close(ClosedState::RouteRemoved));
            }
        }
        debug!(
            "{} - Registering remote route {:?}",
            self.prefix, info.server_id
        );
        // Full interest sync.
        let protos = srv.cluster.interest_protos();
        if !protos.is_empty() {
            crate::server::cluster::trace_route_protos(&self.prefix, &protos);
            let _ = self.shared.out.append(&protos);
        }
        self.batch.mark(&self.shared);
        debug!("{} - Sent local subscriptions to route", self.prefix);
        if others {
            let mut gossip = info.clone();
            if gossip.ip.as_deref().unwrap_or("").is_empty() {
                gossip.ip = Some(format!(
                    "nats-route://{}/",
                    join_host_port(&self.shared.peer.ip().to_string(), info.port)
                ));
            }
            gossip.nonce = None;
            let line = gossip.to_line();
            for r in srv.cluster.routes() {
                if r.shared.cid != self.shared.cid {
                    let _ = r.shared.out.send(&line);
                }
            }
        }
        if !srv.opts().cluster.no_advertise {
            let a = srv.cluster.update_remote_urls(&info.connect_urls, true);
            let b = srv
                .cluster
                .update_remote_scion_urls(&info.scion_connect_urls, true);
            let c = srv
                .cluster
                .update_remote_ws_urls(&info.ws_connect_urls, true);
            if a || b || c {
                send_async_info_to_clients(&srv, a || b, c);
            }
        }
        Ok(())
    }
}

/// Gossip told us of a server we may not know: connect to it unless we
/// already do or it is one of our configured routes
/// (nats-server `processImplicitRoute`).
fn process_implicit_route(srv: &Arc<ServerState>, info: &ServerInfo) {
    if info.server_id == srv.id || srv.cluster.has_remote(&info.server_id) {
        return;
    }
    let opts = srv.opts();
    // A server on a SCION cluster listener gossips its SCION route URL.
    let gossiped = info.ip.as_deref().map(crate::config::parse_route_url);
    if let Some(Ok(url)) = gossiped {
        if let RouteTarget::Scion { isd_as, ip, port } = &url.target {
            let configured = opts.cluster.routes.iter().any(|r| match &r.target {
                RouteTarget::Scion {
                    isd_as: a,
                    ip: i,
                    port: p,
                } => same_isd_as(a, isd_as) && i == ip && p == port,
                RouteTarget::Tcp { .. } => false,
            });
            if !configured {
                let s = implicit_solicit(&opts, info, url.url.clone());
                debug!("Implicit route to {} ({:?})", s.url, info.server_id);
                crate::server::scion::dial_route_url(srv, &url, s);
            }
            return;
        }
    }
    let target = join_host_port(&info.host, info.port).to_lowercase();
    let configured = opts.cluster.routes.iter().any(|r| match &r.target {
        RouteTarget::Tcp { host, port } => join_host_port(host, *port).to_lowercase() == target,
        RouteTarget::Scion { .. } => false,
    });
    if configured {
        return;
    }
    let Some(ip) = info.ip.clone().filter(|s| !s.is_empty()) else {
        return;
    };
    let s = implicit_solicit(&opts, info, ip);
    debug!("Implicit route to {} ({:?})", s.url, info.server_id);
    tokio::spawn(connect_to_route(srv.clone(), s, false));
}

/// How we dial a gossiped route: with our cluster credentials when the peer wants them.
fn implicit_solicit(opts: &crate::options::Options, info: &ServerInfo, url: String) -> Solicit {
    Solicit {
        url,
        user: if info.auth_required {
            opts.cluster.username.clone()
        } else {
            None
        },
        password: if info.auth_required {
            opts.cluster.password.clone()
        } else {
            None
        },
        configured: false,
    }
}

/// Two ISD-AS strings naming the same AS (`1-ff00:0:110` vs `1-FF00:0:110`).
fn same_isd_as(a: &str, b: &str) -> bool {
    match (
        a.parse::<scion_transport::address::IsdAsn>(),
        b.parse::<scion_transport::address::IsdAsn>(),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

impl RouteConn {
    /// route.go updateRemoteRoutePerms: the peer reloaded its cluster permissions
    /// and says so in an INFO. Interest in subjects it now exports and did not
    /// before (and that we import) is sent to it, as it had ignored our RS+ for them.
    fn update_remote_route_perms(&mut self, info: &ServerInfo) {
        let old = {
            let mut m = lock(&self.handle.meta);
            let Some(known) = m.info.as_mut() else {
                return;
            };
            let old = known.export.clone();
            known.import = info.import.clone();
            known.export = info.export.clone();
            old
        };
        if old == info.export {
            return;
        }
        let tester = |e: &Option<crate::proto::json::SubjectPerm>| {
            e.as_ref().map(|e| {
                crate::server::auth::CompiledPerms::compile(&crate::options::Permissions {
                    publish: None,
                    subscribe: Some(crate::options::SubjectPermission {
                        allow: e.allow.clone(),
                        deny: e.deny.clone(),
                    }),
                    allow_responses: None,
                })
            })
        };
        let (old, new) = (tester(&old), tester(&info.export));
        let exports = |t: &Option<crate::server::auth::CompiledPerms>, s: &str| {
            t.as_ref().is_none_or(|t| t.can_subscribe(s, None))
        };
        let mut protos = Vec::new();
        for (subject, queue, n) in self.srv.cluster.interest_entries() {
            if exports(&new, &subject)
                && !exports(&old, &subject)
                && self.srv.cluster.can_import(&subject)
            {
                crate::server::cluster::write_rs_plus(&mut protos, &subject, queue.as_deref(), n);
            }
        }
        if !protos.is_empty() {
            crate::server::cluster::trace_route_protos(&self.prefix, &protos);
            let _ = self.shared.out.append(&protos);
            self.batch.mark(&self.shared);
        }
    }
}

/// A server with a generated cluster name takes the name of a peer whose name is
/// configured or sorts higher (server.go setClusterName, "Cluster name updated to X"),
/// and closes its other routes, which were made under the old name, as Cluster Name
/// Conflict (route.go removeAllRoutesExcept(c), `keep` being the route that brought
/// the name). Those routes' dialers re-dial and meet the new name.
fn adopt_cluster_name(srv: &ServerState, name: &str, keep: &Arc<super::RouteHandle>) {
    srv.cluster.set_name(name);
    info!("Cluster name updated to {}", name);
    for r in srv.cluster.routes() {
        if !Arc::ptr_eq(&r, keep) {
            r.shared.out.close(ClosedState::ClusterNameConflict);
        }
    }
}

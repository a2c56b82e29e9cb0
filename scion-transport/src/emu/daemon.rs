//! One sciond-compatible gRPC daemon per emulated AS (scion-protobuf's generated server).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use scion_protobuf::daemon::v1 as grpc;
use scion_protobuf::daemon::v1::daemon_service_server::DaemonService;
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::paths;
use super::router::Shared;
use crate::address::IsdAsn;
use crate::daemon::{PortRangeResponse, PORT_RANGE_PATH};

pub(crate) struct EmuDaemon {
    pub ia: IsdAsn,
    pub shared: Arc<Shared>,
    pub hops: paths::HopLifetime,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl EmuDaemon {
    fn local_mtu(&self) -> u32 {
        self.shared
            .topo
            .as_spec(self.ia)
            .map(|a| a.mtu as u32)
            .unwrap_or(1472)
    }
}

#[tonic::async_trait]
impl DaemonService for EmuDaemon {
    async fn paths(
        &self,
        request: Request<grpc::PathsRequest>,
    ) -> Result<Response<grpc::PathsResponse>, Status> {
        let req = request.into_inner();
        let src = match req.source_isd_as {
            0 => self.ia,
            v => IsdAsn(v),
        };
        if src != self.ia {
            return Err(Status::invalid_argument(format!(
                "this daemon serves {} only, asked for paths from {src}",
                self.ia
            )));
        }
        let dst = IsdAsn(req.destination_isd_as);
        if dst == self.ia {
            // AS-local: the empty path (hosts talk directly).
            let expiry = now_secs() + 24 * 3600;
            return Ok(Response::new(grpc::PathsResponse {
                paths: vec![grpc::Path {
                    mtu: self.local_mtu(),
                    expiration: Some(prost_types::Timestamp {
                        seconds: expiry as i64,
                        nanos: 0,
                    }),
                    ..Default::default()
                }],
            }));
        }
        let Some(router) = self.shared.routers.get(&self.ia) else {
            return Err(Status::internal("no router for this AS"));
        };
        let params = self.shared.link_params();
        let now = now_secs();
        let mut out = Vec::new();
        for p in paths::enumerate(&self.shared.topo, src, dst) {
            match paths::to_grpc(
                &self.shared.topo,
                &p,
                &params,
                router.internal_addr,
                self.hops.at(now),
            ) {
                Ok(g) => out.push(g),
                Err(e) => tracing::debug!(?e, "skipping a path that does not fit SCION's format"),
            }
        }
        Ok(Response::new(grpc::PathsResponse { paths: out }))
    }

    async fn r#as(
        &self,
        request: Request<grpc::AsRequest>,
    ) -> Result<Response<grpc::AsResponse>, Status> {
        let ia = match request.into_inner().isd_as {
            0 => self.ia,
            v => IsdAsn(v),
        };
        let spec = self
            .shared
            .topo
            .as_spec(ia)
            .ok_or_else(|| Status::not_found(format!("unknown AS {ia}")))?;
        Ok(Response::new(grpc::AsResponse {
            isd_as: spec.ia.0,
            core: spec.core,
            mtu: spec.mtu as u32,
        }))
    }

    async fn interfaces(
        &self,
        _request: Request<grpc::InterfacesRequest>,
    ) -> Result<Response<grpc::InterfacesResponse>, Status> {
        let mut interfaces = HashMap::new();
        if let Some(router) = self.shared.routers.get(&self.ia) {
            for end in self.shared.ifaces.keys().filter(|e| e.ia == self.ia) {
                interfaces.insert(
                    end.ifid as u64,
                    grpc::Interface {
                        address: Some(grpc::Underlay {
                            address: router.internal_addr.to_string(),
                        }),
                    },
                );
            }
        }
        Ok(Response::new(grpc::InterfacesResponse { interfaces }))
    }

    async fn services(
        &self,
        _request: Request<grpc::ServicesRequest>,
    ) -> Result<Response<grpc::ServicesResponse>, Status> {
        Ok(Response::new(grpc::ServicesResponse::default()))
    }

    async fn notify_interface_down(
        &self,
        _request: Request<grpc::NotifyInterfaceDownRequest>,
    ) -> Result<Response<grpc::NotifyInterfaceDownResponse>, Status> {
        Ok(Response::new(grpc::NotifyInterfaceDownResponse {}))
    }

    async fn dr_key_as_host(
        &self,
        _request: Request<grpc::DrKeyAsHostRequest>,
    ) -> Result<Response<grpc::DrKeyAsHostResponse>, Status> {
        Err(Status::unimplemented("DRKey is not emulated"))
    }

    async fn dr_key_host_as(
        &self,
        _request: Request<grpc::DrKeyHostAsRequest>,
    ) -> Result<Response<grpc::DrKeyHostAsResponse>, Status> {
        Err(Status::unimplemented("DRKey is not emulated"))
    }

    async fn dr_key_host_host(
        &self,
        _request: Request<grpc::DrKeyHostHostRequest>,
    ) -> Result<Response<grpc::DrKeyHostHostResponse>, Status> {
        Err(Status::unimplemented("DRKey is not emulated"))
    }
}

/// The generated daemon service plus sciond's `PortRange` call, which scion-protobuf 0.5.2's
/// vendored proto lacks: requests for [`PORT_RANGE_PATH`] are answered here, everything else
/// goes to the generated router (which answers unknown methods with Unimplemented).
#[derive(Clone)]
pub(crate) struct WithPortRange<S> {
    pub inner: S,
    /// The AS's dispatched ports (inclusive).
    pub range: (u16, u16),
}

impl<S: NamedService> NamedService for WithPortRange<S> {
    const NAME: &'static str = S::NAME;
}

/// Unary handler of `PortRange` (request `google.protobuf.Empty`, i.e. `()` in prost).
struct PortRangeSvc((u16, u16));

impl tonic::server::UnaryService<()> for PortRangeSvc {
    type Response = PortRangeResponse;
    type Future = BoxFuture<Response<PortRangeResponse>, Status>;

    fn call(&mut self, _request: Request<()>) -> Self::Future {
        let (lo, hi) = self.0;
        Box::pin(async move {
            Ok(Response::new(PortRangeResponse {
                dispatched_port_start: lo as u32,
                dispatched_port_end: hi as u32,
            }))
        })
    }
}

impl<S, B> Service<http::Request<B>> for WithPortRange<S>
where
    S: Service<
            http::Request<B>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
            Future = BoxFuture<http::Response<tonic::body::Body>, std::convert::Infallible>,
        > + Send,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != PORT_RANGE_PATH {
            return self.inner.call(req);
        }
        let range = self.range;
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<PortRangeResponse, ()>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            Ok(grpc.unary(PortRangeSvc(range), req).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::DaemonClient;
    use crate::emu::router;
    use crate::emu::topo::Topology;
    use scion_protobuf::daemon::v1::daemon_service_server::DaemonServiceServer;
    use std::net::{IpAddr, Ipv4Addr};

    const TOPO: &str = r#"
        [[as]]
        ia = "1-ff00:0:110"
        core = true
        dispatched_ports = "40000-40100"
    "#;

    /// Serves `service` on a loopback port and returns a connected client.
    async fn serve<S>(service: S) -> DaemonClient
    where
        S: Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let addr = listener.local_addr().expect("addr");
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming),
        );
        DaemonClient::connect(&addr.to_string())
            .await
            .expect("connect")
    }

    #[tokio::test]
    async fn port_range_is_served_and_an_old_daemon_means_unknown() {
        let topo = Topology::from_toml(TOPO).expect("topo");
        let ia = topo.ases[0].ia;
        let bound = router::bind(topo, IpAddr::V4(Ipv4Addr::LOCALHOST), &[])
            .await
            .expect("bind");
        let daemon = || EmuDaemon {
            ia,
            shared: bound.shared.clone(),
            hops: paths::HopLifetime::default(),
        };
        let with = serve(WithPortRange {
            inner: DaemonServiceServer::new(daemon()),
            range: (40000, 40100),
        })
        .await;
        assert_eq!(
            with.port_range().await.expect("call"),
            Some(crate::topology::DispatchedPorts::Range(40000, 40100))
        );
        // Other calls still reach the generated service.
        assert_eq!(with.local_as().await.expect("AS").ia, ia);
        // A daemon without the call (the generated service alone answers Unimplemented).
        let old = serve(DaemonServiceServer::new(daemon())).await;
        assert_eq!(old.port_range().await.expect("not an error"), None);
        // A nonsensical range is an error naming it, not a panic or a silent default.
        let bad = serve(WithPortRange {
            inner: DaemonServiceServer::new(daemon()),
            range: (5, 4),
        })
        .await;
        let err = bad.port_range().await.expect_err("bad range");
        assert!(err.to_string().contains("5-4"), "{err}");
    }
}

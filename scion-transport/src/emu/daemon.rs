//! One sciond-compatible gRPC daemon per emulated AS (scion-protobuf's generated server).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use scion_protobuf::daemon::v1 as grpc;
use scion_protobuf::daemon::v1::daemon_service_server::DaemonService;
use tonic::{Request, Response, Status};

use super::paths;
use super::router::Shared;
use crate::address::IsdAsn;

pub(crate) struct EmuDaemon {
    pub ia: IsdAsn,
    pub shared: Arc<Shared>,
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
            match paths::to_grpc(&self.shared.topo, &p, &params, router.internal_addr, now) {
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

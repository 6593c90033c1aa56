//! The docker driver's side of the edge router ([`crate::router`]): which
//! containers an app's host sends its traffic to, derived each time from
//! what the engine runs.

use berth_proto::{labels, AppRef};
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use bollard::query_parameters::ListContainersOptionsBuilder;
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

use super::{spec, DockerRuntime};
use crate::error::DeployError;
use crate::router::{AppRoute, Routing, Target, Unavailable};
use crate::runtime::RouteWant;

impl DockerRuntime {
    /// Puts apps behind `routing`'s router: deploys then move traffic
    /// there, and apps answer on their stable URL.
    pub fn with_routing(mut self, routing: Routing) -> Self {
        self.routing = Some(routing);
        self
    }

    /// Where the router reaches a container published on `port`.
    pub(super) fn dial(&self, port: u16) -> String {
        match self.connect_host() {
            host if host.contains(':') => format!("[{host}]:{port}"),
            host => format!("{host}:{port}"),
        }
    }

    /// The app's route to its running containers of `live`; `None` when a
    /// newer deployment than `live` runs (a deploy in progress moves the
    /// route itself).
    fn route_for(
        &self,
        routing: &Routing,
        app: &AppRef,
        containers: &[&ContainerSummary],
        live: Option<Uuid>,
        serving: bool,
        domains: Option<&[String]>,
    ) -> Option<AppRoute> {
        let running = |c: &&&ContainerSummary| c.state == Some(ContainerSummaryStateEnum::RUNNING);
        let deployment = spec::deployment_of;
        let newer_runs = containers
            .iter()
            .filter(running)
            .any(|c| deployment(c).is_some_and(|id| live.is_none_or(|live| id > live)));
        if newer_runs {
            return None;
        }
        let live_ones: Vec<&&ContainerSummary> = containers
            .iter()
            .filter(running)
            .filter(|c| live.is_some() && deployment(c) == live)
            .collect();
        let dials: Vec<String> = live_ones
            .iter()
            .filter_map(|c| c.ports.iter().flatten().find_map(|p| p.public_port))
            .map(|port| self.dial(port))
            .collect();
        let health_check_path = live_ones
            .iter()
            .find_map(|c| spec::health_check_path_of(c.labels.as_ref()));
        // An app never deployed is "not running yet", not "stopped".
        let target = match (live.is_some() && !serving, dials.is_empty()) {
            (true, _) => Target::Unavailable(Unavailable::Stopped),
            (false, true) => Target::Unavailable(Unavailable::NotRunning),
            (false, false) if serving => Target::Instances(dials),
            (false, false) => Target::Unavailable(Unavailable::NotRunning),
        };
        Some(AppRoute {
            app_id: app.id,
            host: routing.host(app),
            target,
            health_check_path,
            domains: domains.map(<[String]>::to_vec),
        })
    }

    /// Points the app's route at what runs of `live` now (after a scale,
    /// whose restarted containers may have new ports).
    pub(super) async fn reroute(
        &self,
        app: &AppRef,
        live: Option<Uuid>,
        serving: bool,
    ) -> Result<(), DeployError> {
        let Some(routing) = &self.routing else {
            return Ok(());
        };
        let containers = self.app_containers(app.id).await?;
        let containers: Vec<&ContainerSummary> = containers.iter().collect();
        if let Some(route) = self.route_for(routing, app, &containers, live, serving, None) {
            routing.router.set(&route).await?;
        }
        Ok(())
    }

    /// Every container of this installation, any app, running or not.
    pub(super) async fn installation_containers(
        &self,
    ) -> Result<Vec<ContainerSummary>, DeployError> {
        let filters = HashMap::from([(
            "label",
            vec![format!(
                "{}={}",
                labels::INSTALLATION,
                self.config.installation
            )],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        Ok(self.docker.list_containers(Some(options)).await?)
    }

    pub(super) async fn converge_app_routes(
        &self,
        wants: &[RouteWant],
        keep: &(dyn Fn(Uuid) -> bool + Send + Sync),
    ) -> Result<BTreeSet<Uuid>, DeployError> {
        let Some(routing) = &self.routing else {
            return Ok(BTreeSet::new());
        };
        let containers = self.installation_containers().await?;
        let mut routes = Vec::new();
        let mut left = BTreeSet::new();
        for want in wants {
            let ours: Vec<&ContainerSummary> = containers
                .iter()
                .filter(|c| spec::id_label(c, labels::APP) == Some(want.app.id))
                .collect();
            match self.route_for(
                routing,
                &want.app,
                &ours,
                want.live,
                want.serving,
                Some(&want.domains),
            ) {
                Some(route) => routes.push(route),
                None => {
                    left.insert(want.app.id);
                }
            }
        }
        routing
            .router
            .converge(&routes, &|id| left.contains(&id) || keep(id))
            .await
    }
}

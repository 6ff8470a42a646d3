//! The resource group: started in order, stopped in reverse.
//!
//! A failed start stops what the start touched (the failed resource too: it may be half
//! started), in reverse. A failed stop ends the stop at once, leaving the resources it
//! depends on running (as Pacemaker does), and is reported as [`GroupError::StopFailed`]:
//! the node must be fenced before the group starts anywhere else (S8).

use super::{Resource, ResourceError, ResourceState, ResourcesConfig};

/// An ordered list of resources.
pub struct Group {
    resources: Vec<Resource>,
}

/// One resource's state as probed.
#[derive(Debug)]
pub struct Probe {
    /// Resource name.
    pub name: String,
    /// What its monitor said, or why it could not say.
    pub state: Result<ResourceState, ResourceError>,
}

/// Why a group operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// A start failed; everything it had started was stopped again.
    #[error("group start failed at {error}; stopped again: {}", list(rolled_back))]
    StartFailed {
        /// The error of the resource that failed to start.
        error: ResourceError,
        /// Resources stopped during the rollback, in stop order.
        rolled_back: Vec<String>,
    },
    /// A start failed, and so did a stop during the rollback: the node must be fenced.
    #[error(
        "group start failed at {error}; then the rollback failed: {stop_error}; still possibly \
         running: {}. This node must be fenced before the group starts elsewhere",
        list(still_running)
    )]
    RollbackFailed {
        /// The error of the resource that failed to start.
        error: ResourceError,
        /// The error of the stop that failed during the rollback.
        stop_error: Box<ResourceError>,
        /// Resources that may still run (the one whose stop failed and those before it).
        still_running: Vec<String>,
    },
    /// A stop failed: the node must be fenced before the group starts elsewhere (S8).
    #[error(
        "group stop failed: {error}; still possibly running: {}. This node must be fenced \
         before the group starts elsewhere",
        list(still_running)
    )]
    StopFailed {
        /// The error of the stop that failed.
        error: ResourceError,
        /// Resources that may still run (the one whose stop failed and those before it).
        still_running: Vec<String>,
    },
}

impl GroupError {
    /// True when a stop failed, so the node must be fenced (or fence itself) before the
    /// group may start on another node.
    pub fn must_fence(&self) -> bool {
        matches!(
            self,
            GroupError::RollbackFailed { .. } | GroupError::StopFailed { .. }
        )
    }

    /// True when the start failed because another host answers for the floating IP.
    pub fn is_conflict(&self) -> bool {
        match self {
            GroupError::StartFailed { error, .. } | GroupError::RollbackFailed { error, .. } => {
                error.is_conflict()
            }
            GroupError::StopFailed { .. } => false,
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}

impl Group {
    /// A group of these resources, in start order.
    pub fn new(resources: Vec<Resource>) -> Group {
        Group { resources }
    }

    /// The group the `resources:` section describes.
    pub fn from_config(c: &ResourcesConfig) -> Result<Group, ResourceError> {
        let resources = c
            .group
            .iter()
            .map(Resource::from_config)
            .collect::<Result<_, _>>()?;
        Ok(Group::new(resources))
    }

    /// The resources, in start order.
    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// The resource named `name`.
    pub fn get(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name() == name)
    }

    /// Starts every resource in order. When one fails, stops it and those before it, in
    /// reverse order.
    pub async fn start(&self) -> Result<(), GroupError> {
        for (i, r) in self.resources.iter().enumerate() {
            tracing::info!(resource = r.name(), "starting");
            let Err(error) = r.start().await else {
                continue;
            };
            tracing::warn!("{error}; stopping what was started");
            return Err(match stop_reverse(&self.resources[..=i]).await {
                Ok(rolled_back) => GroupError::StartFailed { error, rolled_back },
                Err((stop_error, still_running)) => GroupError::RollbackFailed {
                    error,
                    stop_error: Box::new(stop_error),
                    still_running,
                },
            });
        }
        Ok(())
    }

    /// Stops every resource in reverse order, ending at the first failed stop.
    pub async fn stop(&self) -> Result<(), GroupError> {
        stop_reverse(&self.resources)
            .await
            .map(|_| ())
            .map_err(|(error, still_running)| GroupError::StopFailed {
                error,
                still_running,
            })
    }

    /// Readies every resource for a fast start (see [`Resource::prepare`]); stops at the
    /// first error.
    pub async fn prepare(&self) -> Result<(), ResourceError> {
        for r in &self.resources {
            r.prepare().await?;
        }
        Ok(())
    }

    /// Finishes every resource's background work (see [`Resource::settle`]); returns the
    /// first error after trying all.
    pub async fn settle(&self) -> Result<(), ResourceError> {
        let results = futures::future::join_all(self.resources.iter().map(|r| r.settle())).await;
        results.into_iter().collect()
    }

    /// Lets the agent stop the group while its own unit is stopping (see
    /// [`Resource::release_ordering`]); returns the first error after trying all.
    pub async fn release_ordering(&self) -> Result<(), ResourceError> {
        let results =
            futures::future::join_all(self.resources.iter().map(|r| r.release_ordering())).await;
        results.into_iter().collect()
    }

    /// Every resource's monitor result, in group order (all are asked, in parallel).
    pub async fn probe(&self) -> Vec<Probe> {
        let states = futures::future::join_all(self.resources.iter().map(|r| r.monitor())).await;
        self.resources
            .iter()
            .zip(states)
            .map(|(r, state)| Probe {
                name: r.name().to_string(),
                state,
            })
            .collect()
    }
}

/// Stops `resources` last first. Ok: the names stopped, in order. Err: the failed stop
/// and the names that may still run.
async fn stop_reverse(resources: &[Resource]) -> Result<Vec<String>, (ResourceError, Vec<String>)> {
    let mut stopped = Vec::new();
    for (i, r) in resources.iter().enumerate().rev() {
        tracing::info!(resource = r.name(), "stopping");
        if let Err(e) = r.stop().await {
            tracing::error!("{e}");
            let still = resources[..=i]
                .iter()
                .map(|r| r.name().to_string())
                .collect();
            return Err((e, still));
        }
        stopped.push(r.name().to_string());
    }
    Ok(stopped)
}

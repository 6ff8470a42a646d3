//! Leaving on SIGTERM: for `systemctl restart oneha`, keep the group running and tell the
//! peers; otherwise hand the group over so nobody needs to fence this node
//! (`policy::exit`).

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Loop;
use crate::cluster::state::Command;
use crate::executor::Done;
use crate::policy::Held;
use crate::policy::exit::{ExitPlan, exit_plan};

impl Loop {
    /// Graceful leave: if this node runs the group, hand it over (relocate) or at least
    /// stop it cleanly and journal the release, so nobody needs to fence us.
    pub(super) async fn leave(&mut self, done_rx: &mut mpsc::Receiver<Done>) {
        if matches!(self.held, Held::StopFailed(_)) {
            return;
        }
        let view = self.ctx.node.view();
        let me = self.ctx.me;
        let restart = match crate::own_job::own_job(Duration::from_secs(1)).await {
            Ok(job) => {
                tracing::info!(unit = %job.unit, job = ?job.job_type, "told to stop");
                job.is_restart()
            }
            Err(e) => {
                tracing::debug!("cannot tell a restart from a stop ({e}): handing over");
                false
            }
        };
        let owner_is_me = view.state.group.owner == Some(me);
        match exit_plan(restart, &self.held, self.busy, owner_is_me) {
            ExitPlan::KeepRunning => {
                tracing::info!(
                    "restarting in place: the group keeps running here; the restarted agent \
                     adopts it"
                );
                self.announce_restart().await;
                return;
            }
            ExitPlan::AnnounceRestart => {
                tracing::info!(
                    "restarting: nothing of the group runs here; the peers wait for the \
                     restarted agent instead of fencing this node"
                );
                self.announce_restart().await;
                return;
            }
            ExitPlan::HandOver if !self.held.may_hold() => return,
            ExitPlan::HandOver => {}
        }
        let stop_total: Duration = self
            .ctx
            .cfg
            .resources
            .group
            .iter()
            .map(|r| r.stop_timeout.get())
            .sum();
        let deadline = Instant::now() + stop_total + Duration::from_secs(5);
        // Our own unit is stopping: the units' stop jobs must not wait for it.
        self.ex.release_ordering().await;
        if view.state.group.owner == Some(me) {
            tracing::info!("leaving: asking the cluster to relocate the group");
            let _ = self
                .ctx
                .node
                .propose_idempotent(Command::Relocate { to: None }, Duration::from_secs(3))
                .await;
        }
        // Stop here (the new owner waits for our release, or we stop regardless).
        while self.busy && Instant::now() < deadline {
            if let Ok(Some(d)) =
                tokio::time::timeout(Duration::from_millis(100), done_rx.recv()).await
            {
                self.on_done(d).await;
            }
        }
        if self.held.may_hold() && !matches!(self.held, Held::StopFailed(_)) {
            self.ex.stop();
            self.busy = true;
            self.held = Held::Stopping;
            while self.busy && Instant::now() < deadline {
                if let Ok(Some(d)) =
                    tokio::time::timeout(Duration::from_millis(100), done_rx.recv()).await
                {
                    self.on_done(d).await;
                }
            }
        }
        if self.held == Held::Stopped {
            let epoch = self.ctx.node.view().state.group.dirty.get(&me).copied();
            if let Some(epoch) = epoch {
                let _ = self
                    .ctx
                    .node
                    .propose_idempotent(
                        Command::Released { node: me, epoch },
                        Duration::from_secs(3),
                    )
                    .await;
            }
            tracing::info!("group stopped and released before exit");
        }
    }

    /// A restart: gossip `restarting` for two keep-alive intervals (every link carries it at
    /// least once), then exit (with the group still running here, if it runs here).
    async fn announce_restart(&mut self) {
        self.exit_restart = true;
        self.publish();
        tokio::time::sleep(self.ctx.cfg.timers().keepalive() * 2).await;
    }
}

//! The running world shared by the fake oned's calls, its monitord and scheduler: one lock
//! around the [`World`], the state file written after every change, and the fake HEM fired on
//! host state transitions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::hem::{Hem, HookRun};
use super::world::{World, host_state_number};
use super::world_ops::Refusal;
use super::world_xml;

/// Epoch milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The world a fake starts with: `state_file`'s when it exists (a previous fake's world
/// continues), else `world_file`'s, else an empty world.
pub fn initial(world_file: Option<&Path>, state_file: Option<&Path>) -> Result<World, String> {
    let now = (now_ms() / 1000) as i64;
    match (state_file.filter(|p| p.exists()), world_file) {
        (Some(state), _) => World::load(state, now),
        (None, Some(file)) => World::load(file, now),
        (None, None) => Ok(World::default()),
    }
}

struct Inner {
    world: Mutex<World>,
    state_file: Option<PathBuf>,
    hem: Hem,
}

/// A handle on the running world; clones share it.
#[derive(Clone)]
pub struct WorldHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorldHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldHandle")
            .field("state_file", &self.inner.state_file)
            .finish_non_exhaustive()
    }
}

impl WorldHandle {
    /// A running world starting from `world`, saved to `state_file` (if any) after every
    /// change, and written there once now.
    pub fn new(mut world: World, state_file: Option<PathBuf>) -> Result<WorldHandle, String> {
        world.complete((now_ms() / 1000) as i64)?;
        if let Some(p) = &state_file {
            world.save(p)?;
        }
        let hem = Hem::new(world.settings.hook_log.clone());
        Ok(WorldHandle {
            inner: Arc::new(Inner {
                world: Mutex::new(world),
                state_file,
                hem,
            }),
        })
    }

    /// The world of `state_file` when it exists (a previous fake's world continues), else the
    /// world file's (or an empty world).
    pub fn open(
        world_file: Option<&Path>,
        state_file: Option<&Path>,
    ) -> Result<WorldHandle, String> {
        let world = initial(world_file, state_file)?;
        WorldHandle::new(world, state_file.map(Path::to_path_buf))
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.inner.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the world now.
    pub fn snapshot(&self) -> World {
        self.lock().clone()
    }

    /// Reads the world.
    pub fn read<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the world: then saves it if it changed, and fires the hooks of hosts that
    /// changed state (with PREV_STATE the old state in the `<HOST>` they see). Compares the
    /// whole world to tell; see [`WorldHandle::change`] for the cheap way.
    pub fn mutate<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let (r, _) = self.change(
            |w| {
                let before = w.clone();
                (f(w), before)
            },
            |w, (_, before)| before != w,
        );
        r
    }

    /// Changes the world with `f`; when `changed` (given the world and `f`'s result) says it
    /// did: fires the hooks of hosts that changed state and saves the world.
    pub fn change<R>(
        &self,
        f: impl FnOnce(&mut World) -> R,
        changed: impl FnOnce(&World, &R) -> bool,
    ) -> R {
        let mut w = self.lock();
        let states: Vec<(i64, i64)> = w.hosts.iter().map(|h| (h.id, h.state)).collect();
        let r = f(&mut w);
        if !changed(&w, &r) {
            return r;
        }
        let mut fire = Vec::new();
        for h in &mut w.hosts {
            let old = states
                .iter()
                .find(|(id, _)| *id == h.id)
                .map_or(h.state, |s| s.1);
            if old != h.state {
                h.prev_state = Some(old);
                fire.push(h.id);
            }
        }
        for id in fire {
            let Some(h) = w.host(id) else { continue };
            let mut xml = String::new();
            world_xml::host_into(&mut xml, &w, h);
            for hook in &w.hooks {
                if host_state_number(&hook.state) == Some(h.state) {
                    self.inner.hem.fire(hook, id, h.state, &xml);
                }
            }
            if let Some(h) = w.host_mut(id) {
                h.prev_state = Some(h.state);
            }
        }
        if let Some(p) = &self.inner.state_file
            && let Err(e) = w.save(p)
        {
            tracing::warn!("fake oned: {e}");
        }
        r
    }

    /// Runs a call of the world's state machine: the world changed when it succeeded.
    pub fn call<T>(&self, f: impl FnOnce(&mut World) -> Result<T, Refusal>) -> Result<T, Refusal> {
        self.change(f, |_, r| r.is_ok())
    }

    /// Hook runs finished so far.
    pub fn hook_runs(&self) -> Vec<HookRun> {
        self.inner.hem.runs()
    }

    /// Hook runs still in progress.
    pub fn hooks_running(&self) -> usize {
        self.inner.hem.running()
    }
}

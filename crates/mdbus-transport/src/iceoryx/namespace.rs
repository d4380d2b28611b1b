//! Where a feed's iceoryx2 files live, and who may use them.
//!
//! A feed without a group lives in iceoryx2's default configuration
//! (docs/spec.md, "Wire names"). A feed published with a Unix group
//! (`IoxSenderConfig::group`) lives in a root folder of its own,
//! [`group_root`] (`/tmp/mdbus.<feed>.iceoryx2/`), with its shared-memory
//! files in `/dev/shm` named with the prefix [`group_prefix`]
//! (`mdbus.<feed>.iox2_`), so that every iceoryx2 file of the feed is
//! identifiable.
//!
//! iceoryx2 0.10 gives what it creates owner-only modes and has no option
//! to change them (`iceoryx2-cal` 0.10.0: `dynamic_storage/posix_shared_memory.rs`
//! `FINAL_PERMISSIONS` 0600, `static_storage/file.rs` 0400,
//! `event/trigger/unix_datagram_socket.rs` 0600, their folders 0750; the
//! only alternative is its `dev_permissions` feature, 0666 for all). So
//! each process of a grouped feed runs a [`Keeper`]: a thread that, when
//! inotify reports a new or changed file of the feed (and every 100 ms
//! regardless), gives the files this process owns the feed's group and
//! the group bits it needs, once iceoryx2 has finished creating them:
//!
//! - shared memory in `/dev/shm` (`<prefix>*`): 0660 (dynamic configs and
//!   connections, which subscribers write), `*.data` 0640 (the publisher's
//!   samples, which subscribers map read-only); one still being created
//!   (owner-read bit clear, iceoryx2's "not initialized" mark) is left
//!   alone, and so is one with bits for others (iceoryx2's global
//!   management segment, 0666);
//! - static service configs in `services/`: 0440 once iceoryx2 made them
//!   0400 (0600 is its "being written" mark);
//! - the event sockets of listeners in the root folder: 0660.
//!
//! The root folder is mode 3770 (group `rwx`, new entries take the group,
//! only an entry's owner may remove it), `nodes/` the same, `services/`
//! 2750: members of the group create their nodes and listeners; nobody
//! else can enter.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use iceoryx2::config::Config;
use iceoryx2::prelude::{FileName, Path as IoxPath, SemanticString};
use mdbus_types::FeedGroup;
use mdbus_types::access::check_access;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::names::service_error;
use crate::{Error, Result};

/// Where POSIX shared memory lives on Linux.
const SHM_DIR: &str = "/dev/shm";

/// How often a [`Keeper`] looks at the feed's files without being told.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// The root folder of a grouped feed's iceoryx2 files:
/// `/tmp/mdbus.<feed>.iceoryx2`.
pub fn group_root(feed: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/mdbus.{feed}.iceoryx2"))
}

/// The prefix of a grouped feed's iceoryx2 shared-memory files in
/// `/dev/shm`: `mdbus.<feed>.iox2_`.
pub fn group_prefix(feed: &str) -> String {
    format!("mdbus.{feed}.iox2_")
}

/// The iceoryx2 configuration a feed's services live in.
#[derive(Debug)]
pub(crate) struct Namespace {
    pub(crate) config: Config,
    grouped: Option<Grouped>,
}

/// A grouped feed's files.
#[derive(Debug, Clone)]
struct Grouped {
    root: PathBuf,
    prefix: String,
    group: FeedGroup,
}

impl Namespace {
    /// The namespace a publisher creates `feed` in: its group's own root
    /// (made or taken over here) with a group, the default configuration
    /// without.
    ///
    /// Errors: [`Error::Service`] when the root belongs to another user
    /// (only its owner publishes the feed), when the feed was published
    /// with a group before and none is given now, or when the root cannot
    /// be made.
    pub(crate) fn for_publisher(feed: &str, service: &str, group: Option<&FeedGroup>) -> Result<Namespace> {
        let root = group_root(feed);
        let existing = fs::symlink_metadata(&root).ok();
        let euid = nix::unistd::Uid::effective();
        if let Some(metadata) = &existing
            && (!metadata.is_dir() || metadata.uid() != euid.as_raw())
        {
            let group = FeedGroup::of_gid(metadata.gid());
            return Err(service_error(
                service,
                format!(
                    "permission denied: feed {feed} is published by uid {} with group {group} ({} is theirs): only its owner publishes it",
                    metadata.uid(),
                    root.display()
                ),
            ));
        }
        let Some(group) = group else {
            if existing.is_some() {
                return Err(service_error(
                    service,
                    format!(
                        "feed {feed} was published with a group before ({} exists): publish it with its group, or remove that folder to publish it without one",
                        root.display()
                    ),
                ));
            }
            return Ok(Namespace {
                config: Config::global_config().clone(),
                grouped: None,
            });
        };
        group
            .check_member()
            .map_err(|e| service_error(service, e.to_string()))?;
        let share = |path: &Path, mode: u32| -> Result<()> {
            match fs::create_dir(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(service_error(service, format!("cannot create {}: {e}", path.display())));
                }
            }
            // A folder of ours, not a link someone put there (in /tmp):
            // nobody else can replace it afterwards (sticky /tmp, our root).
            let ours = fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.uid() == euid.as_raw());
            if !ours {
                return Err(service_error(
                    service,
                    format!("{} is not a folder of this user (uid {euid})", path.display()),
                ));
            }
            group
                .share(path, mode)
                .map_err(|e| service_error(service, e.to_string()))
        };
        share(&root, 0o3770)?;
        share(&root.join("nodes"), 0o3770)?;
        share(&root.join("services"), 0o2750)?;
        Namespace::grouped(feed, service, root, group.clone())
    }

    /// The namespace a subscriber finds `feed` in: its group's root when
    /// it has one, else the default configuration.
    ///
    /// Errors: [`Error::AccessDenied`] when the feed has a group and the
    /// calling user is neither its owner nor a member.
    pub(crate) fn for_subscriber(feed: &str, service: &str) -> Result<Namespace> {
        let root = group_root(feed);
        let Ok(metadata) = fs::symlink_metadata(&root) else {
            return Ok(Namespace {
                config: Config::global_config().clone(),
                grouped: None,
            });
        };
        check_access(feed, &root).map_err(Error::AccessDenied)?;
        Namespace::grouped(feed, service, root, FeedGroup::of_gid(metadata.gid()))
    }

    fn grouped(feed: &str, service: &str, root: PathBuf, group: FeedGroup) -> Result<Namespace> {
        let prefix = group_prefix(feed);
        let mut config = Config::global_config().clone();
        let root_text = format!("{}/", root.display());
        let path = IoxPath::new(root_text.as_bytes())
            .map_err(|e| service_error(service, format!("invalid iceoryx2 root {root_text}: {e:?}")))?;
        config.global.set_root_path(&path);
        config.global.prefix = FileName::new(prefix.as_bytes())
            .map_err(|e| service_error(service, format!("invalid iceoryx2 prefix {prefix}: {e:?}")))?;
        Ok(Namespace {
            config,
            grouped: Some(Grouped { root, prefix, group }),
        })
    }

    /// Whether the feed has a group (its own root).
    pub(crate) fn is_grouped(&self) -> bool {
        self.grouped.is_some()
    }

    /// Gives the group what this process created so far (the services and
    /// ports just made), and starts a [`Keeper`] for what it creates later
    /// (connections, sockets). `receiver`: the port id of this process's
    /// subscriber, whose connections the keeper removes when dropped.
    /// `None` for a feed without a group.
    pub(crate) fn share_and_keep(&self, receiver: Option<u128>) -> Option<Keeper> {
        let grouped = self.grouped.clone()?;
        grouped.sweep();
        Some(Keeper::start(grouped, receiver))
    }
}

impl Grouped {
    /// Gives the files of the feed this process owns the group's modes.
    /// Failures are left for the next sweep (a file may vanish meanwhile).
    fn sweep(&self) {
        let euid = nix::unistd::Uid::effective().as_raw();
        let prefix = self.prefix.as_str();
        self.sweep_dir(Path::new(SHM_DIR), euid, |name, metadata| {
            let mode = metadata.permissions().mode() & 0o777;
            if !name.starts_with(prefix) || !metadata.is_file() || mode & 0o400 == 0 || mode & 0o007 != 0 {
                return None;
            }
            Some(if name.ends_with(".data") { 0o640 } else { 0o660 })
        });
        self.sweep_dir(&self.root, euid, |_, metadata| {
            let mode = metadata.permissions().mode() & 0o777;
            (metadata.file_type().is_socket() && mode == 0o600).then_some(0o660)
        });
        self.sweep_dir(&self.root.join("services"), euid, |_, metadata| {
            let mode = metadata.permissions().mode() & 0o777;
            (metadata.is_file() && mode & 0o770 == 0o400).then_some(0o440)
        });
    }

    /// Removes the connections to the receiver port `receiver` that this
    /// process owns (`<prefix>..._<receiver>.connection`).
    fn remove_connections_to(&self, receiver: u128) {
        let euid = nix::unistd::Uid::effective().as_raw();
        let suffix = format!("_{receiver}.connection");
        let Ok(entries) = fs::read_dir(SHM_DIR) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&self.prefix)
                && name.ends_with(&suffix)
                && entry.metadata().is_ok_and(|m| m.uid() == euid)
            {
                let _already_gone = fs::remove_file(entry.path());
            }
        }
    }

    /// Applies `wanted` (the mode an entry should have, `None`: leave it)
    /// to the entries of `dir` owned by `euid`.
    fn sweep_dir(&self, dir: &Path, euid: u32, wanted: impl Fn(&str, &fs::Metadata) -> Option<u32>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.uid() != euid {
                continue;
            }
            let name = entry.file_name();
            let Some(mode) = wanted(&name.to_string_lossy(), &metadata) else {
                continue;
            };
            if metadata.gid() != self.group.gid() || metadata.permissions().mode() & 0o777 != mode {
                let _left_for_the_next_sweep = self.group.share(&entry.path(), mode);
            }
        }
    }
}

/// The thread that gives a grouped feed's new files the group (see the
/// module documentation). Stops when dropped.
///
/// A subscriber's keeper, dropped after the subscriber port, also removes
/// the connections to that port that this process created: the
/// publisher, another user, cannot (in `/dev/shm`, sticky, only a file's
/// owner removes it), and iceoryx2 leaves their removal to it.
#[derive(Debug)]
pub(crate) struct Keeper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    grouped: Grouped,
    receiver: Option<u128>,
}

impl Keeper {
    fn start(grouped: Grouped, receiver: Option<u128>) -> Keeper {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let kept = grouped.clone();
        let thread = std::thread::Builder::new()
            .name("mdbus-group".to_string())
            .spawn(move || keep(&kept, &stopped))
            .ok();
        Keeper {
            stop,
            thread,
            grouped,
            receiver,
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        // SYNC: pairs with the Acquire load in `keep`.
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ignored = thread.join();
        }
        if let Some(receiver) = self.receiver {
            self.grouped.remove_connections_to(receiver);
        }
    }
}

fn keep(grouped: &Grouped, stop: &AtomicBool) {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok();
    if let Some(inotify) = &inotify {
        let flags = AddWatchFlags::IN_CREATE | AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_MOVED_TO;
        for dir in [
            PathBuf::from(SHM_DIR),
            grouped.root.clone(),
            grouped.root.join("services"),
        ] {
            // Without a watch the periodic sweep still runs.
            let _periodic_only = inotify.add_watch(&dir, flags);
        }
    }
    let timeout = u16::try_from(SWEEP_EVERY.as_millis()).unwrap_or(u16::MAX);
    // SYNC: pairs with the Release store in `Keeper::drop`.
    while !stop.load(Ordering::Acquire) {
        if let Some(inotify) = &inotify {
            let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(inotify), PollFlags::POLLIN)];
            let _woken_or_timed_out = poll(&mut fds, timeout);
            while inotify.read_events().is_ok_and(|events| !events.is_empty()) {}
        } else {
            std::thread::sleep(SWEEP_EVERY);
        }
        grouped.sweep();
    }
}

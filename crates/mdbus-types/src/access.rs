//! Access to a feed by Unix group (`mdbus publish --group G`).
//!
//! A feed published with a group is readable by the members of that group
//! and by nobody else but its owner (the publisher's user): the publisher
//! gives its files the group and a mode without bits for others
//! ([`FeedGroup::share`]), and a reader checks first
//! ([`check_access`]) so that a user outside the group gets an
//! [`AccessDenied`] naming the feed and the group, not an `EACCES` from
//! somewhere deep inside.

use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid};

use crate::{Error, Result};

/// A Unix group that may read a feed: its name and gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedGroup {
    name: String,
    gid: u32,
}

impl FeedGroup {
    /// The group named `name` (a name from the group database, or a
    /// numeric gid).
    ///
    /// Errors: [`Error::Group`] when no such group exists or the lookup
    /// fails.
    pub fn by_name(name: &str) -> Result<FeedGroup> {
        let error = |reason: String| Error::Group {
            group: name.to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(error("empty group name".to_string()));
        }
        match Group::from_name(name) {
            Ok(Some(group)) => Ok(FeedGroup {
                name: group.name,
                gid: group.gid.as_raw(),
            }),
            Ok(None) => match name.parse::<u32>() {
                Ok(gid) => Ok(FeedGroup::of_gid(gid)),
                Err(_) => Err(error("no such group".to_string())),
            },
            Err(e) => Err(error(format!("cannot look it up: {e}"))),
        }
    }

    /// The group with id `gid`, named from the group database (the number
    /// when it has no name).
    pub fn of_gid(gid: u32) -> FeedGroup {
        let name = match Group::from_gid(Gid::from_raw(gid)) {
            Ok(Some(group)) => group.name,
            _ => gid.to_string(),
        };
        FeedGroup { name, gid }
    }

    /// The calling process's effective group.
    pub fn effective() -> FeedGroup {
        FeedGroup::of_gid(Gid::effective().as_raw())
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The group's id.
    pub fn gid(&self) -> u32 {
        self.gid
    }

    /// Whether the calling process is in the group (its effective group or
    /// one of its supplementary groups). Root counts as a member.
    pub fn is_member(&self) -> bool {
        Uid::effective().is_root() || in_group(self.gid)
    }

    /// Gives `path` this group and `mode` (e.g. `0o640`; `0o2750` for a
    /// folder whose new files take the group). The caller must own `path`
    /// and, unless root, be a member of the group.
    ///
    /// Errors: [`Error::Group`] naming the path and what failed.
    pub fn share(&self, path: &Path, mode: u32) -> Result<()> {
        let error = |what: &str, e: std::io::Error| Error::Group {
            group: self.name.clone(),
            reason: format!("cannot {what} {}: {e}", path.display()),
        };
        std::os::unix::fs::chown(path, None, Some(self.gid)).map_err(|e| error("give the group to", e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| error(&format!("set mode {mode:o} of"), e))
    }

    /// Checks that the calling process may give files this group: it must
    /// be a member (or root).
    ///
    /// Errors: [`Error::Group`] saying the user is not a member.
    pub fn check_member(&self) -> Result<()> {
        if self.is_member() {
            return Ok(());
        }
        Err(Error::Group {
            group: self.name.clone(),
            reason: format!(
                "the user (uid {}) is not a member: a publisher gives the feed's files only to a group it is in",
                Uid::effective()
            ),
        })
    }
}

impl fmt::Display for FeedGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The calling process's effective uid (the owner of the files it
/// creates).
pub fn effective_uid() -> u32 {
    Uid::effective().as_raw()
}

/// Whether the calling process's effective or supplementary groups
/// include `gid`.
fn in_group(gid: u32) -> bool {
    let gid = Gid::from_raw(gid);
    Gid::effective() == gid || nix::unistd::getgroups().is_ok_and(|groups| groups.contains(&gid))
}

/// A user outside a feed's group asked to read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "permission denied: feed {feed} is readable by group {group} ({} belongs to uid {owner}, group {group}, mode {mode:o}), and this user (uid {uid}) is not a member",
    path.display()
)]
pub struct AccessDenied {
    /// The feed.
    pub feed: String,
    /// The group that may read it.
    pub group: String,
    /// The file or folder of the feed that was refused.
    pub path: PathBuf,
    /// Its owner's uid.
    pub owner: u32,
    /// Its permission bits.
    pub mode: u32,
    /// The calling process's effective uid.
    pub uid: u32,
}

/// Checks that the calling process may read `path`, a file or folder of
/// `feed` that exists: it owns it, is root, or `path` grants read to
/// others, or is in its group. A missing `path` passes (the caller reports
/// what is missing its own way).
///
/// Errors: [`AccessDenied`] naming the feed and the group.
pub fn check_access(feed: &str, path: &Path) -> std::result::Result<(), AccessDenied> {
    let Ok(metadata) = std::fs::metadata(path) else {
        return Ok(());
    };
    let uid = Uid::effective();
    let mode = metadata.permissions().mode() & 0o7777;
    if uid.is_root() || metadata.uid() == uid.as_raw() || mode & 0o004 != 0 || in_group(metadata.gid()) {
        return Ok(());
    }
    Err(denied(feed, path, &metadata))
}

/// [`AccessDenied`] for `path` when an open of it failed with `error`
/// and the file's group is why (the calling process is neither its owner
/// nor in its group); `None` for any other failure.
pub fn denied_by_group(feed: &str, path: &Path, error: &std::io::Error) -> Option<AccessDenied> {
    if error.kind() != std::io::ErrorKind::PermissionDenied {
        return None;
    }
    check_access(feed, path).err()
}

fn denied(feed: &str, path: &Path, metadata: &std::fs::Metadata) -> AccessDenied {
    AccessDenied {
        feed: feed.to_string(),
        group: FeedGroup::of_gid(metadata.gid()).name,
        path: path.to_path_buf(),
        owner: metadata.uid(),
        mode: metadata.permissions().mode() & 0o7777,
        uid: Uid::effective().as_raw(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_group_is_named_in_the_error() {
        let err = FeedGroup::by_name("mdbus-no-such-group-x").unwrap_err();
        assert_eq!(err.to_string(), "group mdbus-no-such-group-x: no such group",);
        assert!(
            FeedGroup::by_name("")
                .unwrap_err()
                .to_string()
                .contains("empty group name")
        );
    }

    #[test]
    fn the_own_primary_group_is_found_by_name_and_number_and_has_us() {
        let own = FeedGroup::effective();
        assert!(own.is_member());
        assert_eq!(FeedGroup::by_name(own.name()).unwrap().gid(), own.gid());
        assert_eq!(FeedGroup::by_name(&own.gid().to_string()).unwrap().gid(), own.gid());
    }

    #[test]
    fn share_sets_group_and_mode_and_the_owner_passes_the_check() {
        let dir = std::env::temp_dir().join(format!("mdbus-access-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, b"x").unwrap();
        let own = FeedGroup::effective();
        own.share(&file, 0o640).unwrap();
        let metadata = std::fs::metadata(&file).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o7777, 0o640);
        assert_eq!(metadata.gid(), own.gid());
        assert_eq!(check_access("f", &file), Ok(()));
        assert_eq!(check_access("f", &dir.join("missing")), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

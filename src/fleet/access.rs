//! Site scoping and permissions: which devices a user may see and touch,
//! and what their role lets them do.
//!
//! Scope fails closed: an admin, or a user an admin granted "all sites",
//! sees the whole fleet; everyone else sees the devices of the sites they
//! are members of and nothing more — no sites means no devices. Devices
//! with no site are outside every limited scope. Every device query goes
//! through [`Scope::devices`], so a scoped user can neither list nor open
//! nor edit another site's camera (a device outside the scope answers
//! 404, the same as a missing one).

use std::sync::Arc;

use sea_orm::{ColumnTrait, Condition};

use crate::db::entities::device;
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Sorted, deduplicated site ids; empty sees nothing.
    Sites(Arc<[i32]>),
}

impl Scope {
    /// A scope from a user's memberships (none → nothing).
    pub fn from_sites(mut ids: Vec<i32>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        Scope::Sites(ids.into())
    }

    /// Sees nothing (a user with no sites and no all-sites grant).
    pub fn none() -> Self {
        Scope::Sites(Arc::from([]))
    }

    /// True when this scope covers every one of these sites.
    pub fn covers(&self, sites: impl IntoIterator<Item = Option<i32>>) -> bool {
        sites.into_iter().all(|s| self.allows_site(s))
    }

    /// The condition that limits a device query to this scope.
    pub fn devices(&self) -> Condition {
        self.on(device::Column::SiteId)
    }

    /// The same limit on any table's site column (alerts, …).
    pub fn on(&self, site_column: impl ColumnTrait) -> Condition {
        match self {
            Scope::All => Condition::all(),
            Scope::Sites(ids) => Condition::all().add(site_column.is_in(ids.iter().copied())),
        }
    }

    pub fn allows_site(&self, site: Option<i32>) -> bool {
        match self {
            Scope::All => true,
            Scope::Sites(ids) => site.is_some_and(|s| ids.contains(&s)),
        }
    }

    /// Refuse to put a device into a site outside the scope.
    pub fn check_site(&self, site: Option<i32>) -> Result<()> {
        if self.allows_site(site) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::PermissionDenied,
                "that site is outside the sites you may manage",
            ))
        }
    }

    /// A short key for caches of per-scope results.
    pub fn cache_key(&self) -> String {
        match self {
            Scope::All => "*".into(),
            Scope::Sites(ids) if ids.is_empty() => "-".into(),
            Scope::Sites(ids) => ids
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_memberships_means_nothing_and_limited_scopes_exclude_siteless_devices() {
        let none = Scope::from_sites(vec![]);
        assert!(!none.allows_site(None) && !none.allows_site(Some(7)));
        assert_eq!(none, Scope::none());
        assert_eq!(none.cache_key(), "-");
        let all = Scope::All;
        assert!(all.allows_site(None) && all.allows_site(Some(7)));
        let s = Scope::from_sites(vec![3, 1, 3]);
        assert_eq!(s, Scope::Sites(vec![1, 3].into()));
        assert!(s.allows_site(Some(1)) && !s.allows_site(Some(2)) && !s.allows_site(None));
        assert!(s.check_site(Some(2)).is_err());
        assert_eq!(s.cache_key(), "1,3");
    }
}

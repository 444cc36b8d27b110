//! Authentication and RBAC (etcd 3.4's `auth` package): the replicated [`AuthStore`] of users, roles and
//! permissions, the permission checks every request passes ([`AuthStore::check_request`] and friends, called
//! from the one admission chain in `etcdserver`), and the [`TokenProvider`] for simple and JWT tokens.
//! No I/O here but the backend records written through the apply batch.
mod perms;
mod store;
mod token;

pub use perms::Perms;
pub use store::{AuthInfo, AuthStore, ROOT_ROLE, ROOT_USER};
pub use token::{TokenInfo, TokenProvider};

//! Accounts, credentials and who may do what.
//!
//! `token` signs and checks access tokens, `password` hashes passwords,
//! `identity` loads who is asking, `known` keeps
//! the identities of tokens already checked, and `policy` is the one place that
//! decides what they may see.

pub mod bearer;
pub mod identity;
pub mod known;
pub mod password;
pub mod policy;
pub mod token;

pub use identity::{Identity, Membership, Role, Viewer};

//! berth-store-etcd: berth's store on etcd, and leader election among the servers that
//! share it.
//!
//! [`EtcdStore`] implements [`berth_store::Store`] on an etcd v3 cluster: every key of
//! one berth cluster lives under a key prefix ([`EtcdConfig::prefix`], so several
//! clusters or tests share one etcd), a batch is one etcd transaction, revisions are
//! etcd's own (a fresh prefix in a used etcd does not start at 0), and a watch is an etcd
//! watch from a revision, whose history ends where etcd was compacted.
//!
//! [`election`] elects one leader among the servers on one etcd, by a lease kept alive
//! and a key per candidate under [`EtcdConfig::election_prefix`]; the server runs the
//! reconcilers only while it leads.
//!
//! What it does not do: run or compact etcd (an operator's etcd does that; a store
//! watch from before the compaction fails with [`berth_store::StoreError::Compacted`]),
//! speak TLS or authenticate, or fence a deposed leader's writes (they remain guarded
//! by the mod revisions they read, as every writer's are).
//!
//! Layout:
//! - [`config`]: [`EtcdConfig`] (endpoints, prefix, timeouts) and how the client
//!   connects, waiting for etcd when it is not up yet.
//! - [`keys`] (private): the mapping between store keys and etcd keys.
//! - [`store`]: [`EtcdStore`]'s reads and writes.
//! - `watch` (private): store watches on etcd watches.
//! - [`election`]: leader election ([`election::Election`]).

pub mod config;
mod connection;
pub mod election;
mod keys;
pub mod store;
mod watch;

pub use config::EtcdConfig;
pub use election::{Election, ElectionConfig};
pub use store::EtcdStore;

//! berth-store's integration tests: the conformance suite on both backends, and the redb
//! store's reopen, history and full-disk behaviour. One test binary (each file below is a
//! module); `crash_durability.rs` is its own binary because it re-executes itself.

mod conformance;
mod redb_full_disk;
mod redb_history_bytes;
mod redb_reopen;

//! berth-store-etcd's integration tests against a real etcd: the store conformance suite
//! and leader election. One test binary (each file below is a module).

mod conformance;
mod election;

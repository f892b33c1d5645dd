//! redb backend.
pub struct RedbStore;

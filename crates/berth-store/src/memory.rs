//! In-memory backend (for tests).
pub struct MemoryStore;

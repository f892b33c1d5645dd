//! End-to-end tests for berth; see tests/tests/.

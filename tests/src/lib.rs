//! End-to-end tests for berth; see tests/tests/e2e/ (one test binary) and tests/tests/scaling_speed.rs.

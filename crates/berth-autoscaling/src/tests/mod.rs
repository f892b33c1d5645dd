//! Engine tests with synthetic metric series.

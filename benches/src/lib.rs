//! Benchmarks for berth; see benches/benches/ and benches/run.sh.

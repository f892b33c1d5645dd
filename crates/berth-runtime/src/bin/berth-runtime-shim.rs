//! The process runtime's shim as a standalone program, for this crate's tests and for
//! embedders without a `berth shim` subcommand: `berth-runtime-shim --dir DIR -- ARGV...`.

fn main() {
    berth_runtime::process::shim_main(std::env::args().skip(1).collect())
}

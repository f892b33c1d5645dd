//! `berth dataplane`'s command line: `berth dataplane run`, the data plane process itself
//! (started by `berth server`); `berth dataplane upgrade`, replacing the running data
//! plane of a data dir by one of the current executable without refusing a connection.
//!
//! What it does not do: start a data plane where none runs (`berth server` does).

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::launch::{self, Found};
use super::process::DataPlaneArgs;
use super::DataPlanePaths;

#[derive(Debug, Clone, clap::Args)]
pub struct DataPlaneCommand {
    #[command(subcommand)]
    pub action: DataPlaneAction,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum DataPlaneAction {
    /// The data plane process itself (`berth server` starts it).
    #[command(hide = true)]
    Run(DataPlaneArgs),
    /// Replace the running data plane by one started from this executable (run it after
    /// installing a new berth binary): the new one takes the listening sockets, the
    /// configuration and the target health over, and the old one drains and exits. No
    /// connection is refused. Prints the old and the new pid.
    Upgrade {
        /// The data dir whose data plane is upgraded.
        #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
        data_dir: PathBuf,
    },
}

/// Runs `berth dataplane [upgrade]`.
pub async fn run(command: DataPlaneCommand) -> Result<()> {
    match command.action {
        DataPlaneAction::Run(args) => super::process::run(args).await,
        DataPlaneAction::Upgrade { data_dir } => upgrade(&data_dir).await,
    }
}

async fn upgrade(data_dir: &std::path::Path) -> Result<()> {
    let paths = DataPlanePaths::of(data_dir);
    let Found::Running(old) = launch::find(&paths).await? else {
        bail!(
            "no data plane runs for {}: `berth server` starts one",
            data_dir.display()
        );
    };
    let new = launch::upgrade(data_dir, &paths, &old, &old.options).await?;
    println!(
        "data plane upgraded: pid {} → pid {} (berth {} → {})",
        old.pid, new.pid, old.version, new.version
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        command: DataPlaneCommand,
    }

    #[test]
    fn upgrade_and_run_parse_apart() {
        let cli = Cli::try_parse_from(["dataplane", "upgrade", "--data-dir", "/d"]).unwrap();
        assert!(matches!(
            cli.command.action,
            DataPlaneAction::Upgrade { ref data_dir } if data_dir == std::path::Path::new("/d")
        ));
        let cli = Cli::try_parse_from([
            "dataplane",
            "run",
            "--data-dir",
            "/d",
            "--mesh-inbound-addr",
            "127.0.0.1:0",
            "--take-over",
        ])
        .unwrap();
        let DataPlaneAction::Run(run) = cli.command.action else {
            panic!("the process's arguments parse as run");
        };
        assert!(run.take_over);
        assert_eq!(
            run.options.mesh_inbound_addr,
            "127.0.0.1:0".parse().unwrap()
        );
    }
}

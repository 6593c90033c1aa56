//! `make chaos`: the long form of the fault suite (see `berth_tests::chaos`).

use berth_tests::chaos::{self, Args};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = chaos::run(Args::parse()).await?;
    println!("{report}");
    anyhow::ensure!(
        report.violations() == 0,
        "{} invariant violations",
        report.violations()
    );
    Ok(())
}

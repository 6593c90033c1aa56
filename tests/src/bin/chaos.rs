//! `make chaos`: the long form of the fault suite (see `berth_tests::chaos`).

use berth_tests::chaos::{self, Args};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let report = chaos::run(Args::parse()).await?;
    println!("{report}");
    if report.violations() > 0 {
        eprintln!("make chaos: {} invariant violations", report.violations());
        std::process::exit(1);
    }
    Ok(())
}

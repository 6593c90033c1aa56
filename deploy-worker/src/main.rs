use berth_deploy_worker::{run, Config};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    berth_common::ops::init_tracing();
    run(Config::parse(), berth_common::shutdown::on_signal()).await
}

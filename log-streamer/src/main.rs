use berth_log_streamer::{run, Config};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    berth_common::ops::init_tracing();
    run(Config::parse(), berth_common::shutdown::on_signal()).await
}

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    berth_common::ops::init_tracing();
    berth_backend::run(berth_backend::Config::parse()).await
}

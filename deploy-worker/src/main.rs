use berth_deploy_worker::{kubernetes::render, run, Invocation};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Invocation::from_env() {
        Invocation::Render(args) => {
            print!("{}", render::render(&args)?);
            Ok(())
        }
        Invocation::Worker(config) => {
            berth_common::ops::init_tracing();
            run(*config, berth_common::shutdown::on_signal()).await
        }
    }
}

use clap::Parser;
use embudo::interfaces::cli::{Cli, run};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    embudo::interfaces::logging::init(cli.command.default_log_level());
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

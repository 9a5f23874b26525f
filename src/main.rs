use clap::Parser;
use embudo::cli::{Cli, run};

#[tokio::main]
async fn main() {
    embudo::logging::init();
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

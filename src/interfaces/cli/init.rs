//! `embudo init DIR`: the demo funnel written into a folder.

use crate::app::AppError;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The folder to create or fill.
    dir: PathBuf,
    /// Overwrite files that already exist.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<i32, AppError> {
    let written = crate::funnel::scaffold::init(&args.dir, args.force).map_err(AppError::Usage)?;
    println!("wrote {} files into {}", written.len(), args.dir.display());
    println!(
        "next: cd {} && embudo check && embudo run   (a new database is seeded with the sample leads.csv and events.csv; emails land in outbox-mail/)",
        args.dir.display()
    );
    Ok(0)
}

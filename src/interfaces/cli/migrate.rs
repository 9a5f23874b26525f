//! `embudo migrate`: create or upgrade the database schema.

use super::open;
use crate::app::AppError;
use crate::clock::Clock;
use std::path::Path;

pub async fn run(config: &Path) -> Result<i32, AppError> {
    let cfg = open::config(config, Clock::system().now())?;
    let store = crate::store::Store::open(&cfg.database).await?;
    let n = store.migrate().await?;
    println!("{}: {n} migration(s) applied", cfg.database);
    Ok(0)
}

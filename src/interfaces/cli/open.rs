//! Opening what a command needs: the config alone or its database, without loading
//! rules or templates (operator commands work even while the folder has a broken
//! rule), or the whole application at the command's clock.

use crate::app::{App, AppError};
use crate::clock::Clock;
use crate::funnel::config::Config;
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::path::Path;

/// The config alone; `now` judges what depends on the date (a campaign's dates).
pub fn config(path: &Path, now: DateTime<Utc>) -> Result<Config, AppError> {
    Config::load(path, now).map_err(|e| AppError::Funnel(e.into()))
}

/// The funnel's database, created and migrated if need be.
pub async fn store(path: &Path, now: DateTime<Utc>) -> Result<Store, AppError> {
    database(&config(path, now)?).await
}

/// The database `cfg` names, created and migrated if need be.
pub async fn database(cfg: &Config) -> Result<Store, AppError> {
    Ok(Store::open_and_migrate(&cfg.database).await?)
}

/// The funnel's database, which must exist already: an operator's action (pause,
/// outbox, forget) on a new, empty database would report success while the running
/// daemon, on the real one, goes on. That happens when embudo.yaml is half-saved or
/// names another database.
pub async fn existing_store(
    path: &Path,
    what: &str,
    now: DateTime<Utc>,
) -> Result<Store, AppError> {
    existing_database(&config(path, now)?, what).await
}

/// [`existing_store`] for a config already loaded.
pub async fn existing_database(cfg: &Config, what: &str) -> Result<Store, AppError> {
    if let Some(file) = crate::store::sqlite_file(&cfg.database)
        && !file.exists()
    {
        return Err(AppError::Usage(format!(
            "no database at {}: {} names `{}`, which does not exist yet, so {what} would act on nothing; check `database:` in {} (or EMBUDO_DATABASE_URL)",
            file.display(),
            cfg.display_path(&cfg.path),
            cfg.database,
            cfg.display_path(&cfg.path),
        )));
    }
    database(cfg).await
}

/// The whole application, its clock held at `--now T` (or the wall clock): what the
/// commands that evaluate or send start with.
pub async fn app_at(path: &Path, now: Option<DateTime<Utc>>) -> Result<App, AppError> {
    App::builder(path)
        .clock(Clock::held_or_system(now))
        .build()
        .await
}

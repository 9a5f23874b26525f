//! `embudo pause|resume [--campaign C]`: the operator's stop, kept in the database so
//! it survives restarts.

use super::open;
use crate::app::AppError;
use crate::clock::Clock;
use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Stop only this campaign's emails (for `resume`: let only this one go again).
    #[arg(long)]
    campaign: Option<String>,
}

pub async fn run(config: &Path, args: Args, pause: bool) -> Result<i32, AppError> {
    let campaign = args.campaign;
    let cfg = open::config(config, Clock::system().now())?;
    if let Some(c) = &campaign {
        cfg.campaign(c).map_err(AppError::Usage)?;
    }
    let what = if pause { "pause" } else { "resume" };
    let store = open::existing_database(&cfg, what).await?;
    store.set_paused(campaign.as_deref(), pause).await?;
    let what = campaign
        .map(|c| format!("campaign `{c}`"))
        .unwrap_or_else(|| "all sending".into());
    if pause {
        println!("{what} paused: nothing leaves until `embudo resume` (this survives restarts)");
    } else {
        println!("{what} resumed");
    }
    Ok(0)
}

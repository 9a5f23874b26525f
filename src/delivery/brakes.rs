//! What stops a delivery round between two sends: the operator's pause (all sending,
//! or one campaign's) and the caller's `stop` (shutdown, a lost lease).

use crate::store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

/// What stops a round between two sends: the operator's pause (read from the database
/// at most every half second, so a pause takes effect within a second) and `stop`.
pub(super) struct Brakes {
    stop: CancellationToken,
    looked: Option<std::time::Instant>,
    pub(super) paused: bool,
    pub(super) paused_campaigns: Vec<String>,
}

/// How often a round reads the pause switches.
const PAUSE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

impl Brakes {
    pub(super) fn new(stop: CancellationToken) -> Brakes {
        Brakes {
            stop,
            looked: None,
            paused: false,
            paused_campaigns: Vec::new(),
        }
    }

    /// Why the round must stop now, if it must.
    pub(super) async fn check(
        &mut self,
        store: &Store,
    ) -> Result<Option<&'static str>, StoreError> {
        if self.stop.is_cancelled() {
            return Ok(Some("stopping"));
        }
        if self.looked.is_none_or(|t| t.elapsed() >= PAUSE_POLL) {
            (self.paused, self.paused_campaigns) = store.paused().await?;
            self.looked = Some(std::time::Instant::now());
        }
        Ok(self.paused.then_some("sending is paused"))
    }

    /// Sleeps until `at`, looking at the brakes meanwhile; why it stopped, if it did.
    pub(super) async fn wait_until(
        &mut self,
        store: &Store,
        at: tokio::time::Instant,
    ) -> Result<Option<&'static str>, StoreError> {
        loop {
            if let Some(why) = self.check(store).await? {
                return Ok(Some(why));
            }
            let now = tokio::time::Instant::now();
            if now >= at {
                return Ok(None);
            }
            let nap = (at - now).min(PAUSE_POLL);
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                _ = self.stop.cancelled() => {}
            }
        }
    }

    /// Whether `pause --campaign` holds this campaign's rows.
    pub(super) fn holds_campaign(&self, campaign: Option<&str>) -> bool {
        campaign.is_some_and(|c| self.paused_campaigns.iter().any(|p| p == c))
    }
}

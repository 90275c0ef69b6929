//! Rollout simulator placeholder (filled below).
use crate::state::AppState;
pub async fn run(_state: AppState) {}

//! TEMPORARY placeholder for the watch module (issue 4), being written on branch `watch`;
//! replaced wholesale when that branch merges. Does nothing.
use crate::model::{Message, Verdict};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {}
impl WatchConfig {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}
pub struct Watch;
impl Watch {
    pub fn new(_cfg: WatchConfig) -> Watch {
        Watch
    }
    pub fn observe(&mut self, _m: &[Message], _v: &mut [Verdict], _out: &mut Vec<Output>) {}
    pub fn report(&mut self, _r: Report, _out: &mut Vec<Output>) {}
}
#[derive(Debug, Serialize)]
pub enum Output {
    Alert(String),
    Scorecard(String),
    Reward(String),
    Review(String),
}
impl Output {
    pub fn key(&self) -> &str {
        ""
    }
    pub fn alert_kind(&self) -> Option<&str> {
        None
    }
}
#[derive(Debug, Deserialize)]
pub struct Report {}
pub const ALERT_KINDS: &[&str] = &[];
pub const REASONS: &[&str] = &[];

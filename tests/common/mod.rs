//! Helpers shared by the integration tests (`mod common;`).

pub mod daemon;
pub mod http;
pub mod fleet;
pub mod journal;
pub mod netns;
pub mod tail;

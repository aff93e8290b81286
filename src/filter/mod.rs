//! Filters. (in progress)
pub mod date;

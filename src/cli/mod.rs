//! CLI. (in progress)

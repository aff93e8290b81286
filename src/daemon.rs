//! Daemon. (in progress)

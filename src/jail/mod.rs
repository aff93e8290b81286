//! Jails. (in progress)

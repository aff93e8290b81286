//! Configuration. (in progress)

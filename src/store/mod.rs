//! Persistent state. (Stub: in progress.)

//! Control socket: the daemon's unix socket server and the CLI's client.
//! (Stub: server and client in progress.)

pub mod protocol;

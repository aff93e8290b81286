//! Batching worker between the engine and a firewall backend. (Stub.)

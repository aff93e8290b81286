//! nftables backend. (Stub: implementation in progress.)

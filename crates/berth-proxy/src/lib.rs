//! berth-proxy

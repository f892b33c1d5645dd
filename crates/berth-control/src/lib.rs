//! berth-control

//! harmony-config

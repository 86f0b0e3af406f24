//! helm (in progress)

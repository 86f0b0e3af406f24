//! tools (in progress)

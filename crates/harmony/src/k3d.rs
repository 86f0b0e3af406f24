//! k3d (in progress)

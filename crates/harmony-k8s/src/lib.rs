//! harmony-k8s (in progress)

//! openbao (in progress)

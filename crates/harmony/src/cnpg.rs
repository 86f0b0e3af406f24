//! cnpg (in progress)

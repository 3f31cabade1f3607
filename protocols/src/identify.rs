//! identify (in progress)

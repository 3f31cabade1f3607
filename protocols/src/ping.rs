//! ping (in progress)

//! perf (in progress)

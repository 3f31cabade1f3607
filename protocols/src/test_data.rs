//! test_data (in progress)

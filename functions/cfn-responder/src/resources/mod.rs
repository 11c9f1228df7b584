//! The resource types this function hosts.

pub mod ami_lookup;

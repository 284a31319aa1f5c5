//! One module per format driver. Each parses and validates its metadata and implements
//! [`crate::Image`]: it maps guest ranges to file ranges and never does bulk I/O itself.

pub(crate) mod common;
pub mod parallels;
pub mod qcow;
pub mod qcow2;
pub mod qed;
pub mod raw;
pub mod vdi;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

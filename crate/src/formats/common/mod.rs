//! Machinery the format drivers share, so that no driver reaches into another: panic-free
//! field readers, the on-disk struct declaration, the bounded table cache, parent (backing)
//! file resolution, the extent files a descriptor names, extent building and the open-time
//! scan that turns a damaged table into a finding.

pub(crate) mod bytes;
pub(crate) mod descriptors;
pub(crate) mod extents;
pub(crate) mod intact;
pub(crate) mod layout;
pub(crate) mod parent;
pub(crate) mod scan;
pub(crate) mod table;

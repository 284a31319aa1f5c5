//! Machinery the format drivers share, so that no driver reaches into another: panic-free
//! field readers, the bounded table cache, parent (backing) file resolution, extent building
//! and the open-time scan that turns a damaged table into a finding.

pub(crate) mod bytes;
pub(crate) mod extents;
pub(crate) mod parent;
pub(crate) mod scan;
pub(crate) mod table;

/// The `findings` and `files` answers of an [`crate::Image`] driver that reads one file
/// (`self.file`) and keeps what it found in `self.findings`: every such driver answers them
/// the same way.
macro_rules! one_file_image {
    () => {
        fn findings(&self) -> Vec<$crate::report::Finding> {
            self.findings.clone()
        }

        fn files(&self) -> Vec<($crate::extent::FileId, &'static str)> {
            vec![(self.file, "image")]
        }
    };
}
pub(crate) use one_file_image;

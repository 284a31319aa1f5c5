use super::*;
use crate::error::{Error, Result};
use crate::extent::Extent;
use crate::format::Format;
use crate::image::Basics;
use async_trait::async_trait;

/// A 16-unit image of 4 KiB units whose unit `i` is stored where `at[i]` says (None: a hole,
/// u64::MAX: its table is past the end, failing the map like qcow2 does).
struct Fake {
    at: Vec<Option<u64>>,
}

const U: u64 = 4096;

#[async_trait(?Send)]
impl Image for Fake {
    fn basics(&self) -> Basics<'_> {
        Basics::new(Format::Qcow2, self.at.len() as u64 * U, FileId(0), &[])
    }
    async fn map_inside(&self, start: u64, end: u64) -> Result<Vec<Extent>> {
        let mut out = vec![];
        let mut pos = start;
        while pos < end {
            let i = (pos / U) as usize;
            let n = ((i as u64 + 1) * U).min(end) - pos;
            let mapping = match self.at[i] {
                None => Mapping::Unallocated,
                Some(u64::MAX) => return Err(Error::truncated("table past the end")),
                Some(h) => Mapping::Data {
                    file: FileId(0),
                    offset: h + pos % U,
                },
            };
            Extent::push_merged(
                &mut out,
                Extent {
                    start: pos,
                    len: n,
                    mapping,
                },
            );
            pos += n;
        }
        Ok(out)
    }
    fn details(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

fn layout(file_len: u64) -> Layout {
    let mut l = Layout::new(FileId(0), file_len, U);
    l.meta(0, U, "header");
    l
}

fn run(at: Vec<Option<u64>>, file_len: u64) -> Intact {
    pollster::block_on(walk(&Fake { at }, &layout(file_len)))
}

#[test]
fn an_intact_image_has_no_finding() {
    let at = (0..16)
        .map(|i| (i % 2 == 0).then_some((i as u64 / 2 + 1) * U))
        .collect();
    let found = run(at, 9 * U);
    assert!(found.findings().is_empty());
}

#[test]
fn data_past_the_end_is_counted_once() {
    // Units 3, 5 and 6 are stored at 8, 9 and 10 units; the file holds 8.
    let mut at = vec![None; 16];
    at[1] = Some(U);
    at[3] = Some(8 * U);
    at[5] = Some(9 * U);
    at[6] = Some(10 * U);
    let found = run(at, 8 * U);
    assert_eq!(found.lost, 3 * U);
    let f = found.findings();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].code, FindingCode::Truncated);
    assert!(f[0].message.contains("12 KiB in all"), "{}", f[0].message);
    assert!(
        f[0].message.contains("first at host offset 0x8000"),
        "{}",
        f[0].message
    );
}

#[test]
fn a_failing_map_is_split_down_to_the_unit() {
    let mut at = vec![None; 16];
    at[2] = Some(U);
    at[7] = Some(u64::MAX);
    at[8] = Some(u64::MAX);
    let found = run(at, 2 * U);
    assert_eq!(found.lost, 2 * U);
    assert!(found.findings()[0].message.contains("table past the end"));
}

#[test]
fn two_units_in_one_host_cluster_are_corrupt() {
    let mut at = vec![None; 16];
    at[1] = Some(U);
    at[9] = Some(U);
    let f = run(at, 4 * U).findings();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].code, FindingCode::Corrupt);
    assert!(f[0].message.contains("same host bytes"), "{}", f[0].message);
}

#[test]
fn data_over_the_header_is_corrupt() {
    let mut at = vec![None; 16];
    at[4] = Some(0);
    let f = run(at, 4 * U).findings();
    assert!(f[0].message.contains("over the header"), "{}", f[0].message);
}

/// Units 8..12 are mapped by a table declared at 6 units, past the end of the 4-unit file:
/// those 4 units count (not what the table would say), the map is not asked for them, and the
/// message names the missing table.
#[test]
fn a_missing_table_counts_the_guest_range_it_maps() {
    let mut at = vec![None; 16];
    at[1] = Some(U);
    for a in &mut at[8..12] {
        *a = Some(u64::MAX);
    }
    at[13] = Some(2 * U);
    let mut l = layout(4 * U);
    l.table(FileId(0), (6 * U, U), "L2 table", (8 * U, 12 * U));
    let found = pollster::block_on(walk(&Fake { at }, &l));
    assert_eq!(found.lost, 4 * U);
    let f = found.findings();
    assert_eq!(f.len(), 1, "{:?}", f[0].message);
    let m = &f[0].message;
    assert!(m.contains("first at host offset 0x6000"), "{m}");
    assert!(m.contains("the table itself is missing"), "{m}");
    assert!(
        m.contains("the L2 table mapping guest 32 KiB..48 KiB"),
        "{m}"
    );
    assert!(m.contains("1 missing table(s)"), "{m}");
}

/// Data after a missing table's range but at a lower guest offset comes first in the message.
#[test]
fn the_first_lost_byte_is_the_lowest_guest_offset() {
    let mut at = vec![None; 16];
    at[2] = Some(9 * U);
    let mut l = layout(4 * U);
    l.table(FileId(0), (6 * U, U), "L2 table", (8 * U, 12 * U));
    let found = pollster::block_on(walk(&Fake { at }, &l));
    assert_eq!(found.lost, 5 * U);
    let m = &found.findings()[0].message;
    assert!(m.contains("guest data at 8 KiB..48 KiB"), "{m}");
    assert!(m.contains("first at host offset 0x9000;"), "{m}");
}

#[test]
fn outside_leaves_the_skipped_ranges_out() {
    let skip = [(10, 20), (30, 40)];
    assert_eq!(outside(&skip, 0, 50), vec![(0, 10), (20, 30), (40, 50)]);
    assert_eq!(outside(&skip, 12, 35), vec![(20, 30)]);
    assert_eq!(outside(&skip, 10, 20), vec![]);
}

#[test]
fn sizes_read_well() {
    assert_eq!(size(300), "300 bytes");
    assert_eq!(size(512 << 20), "512 MiB");
    assert_eq!(size(1536 << 20), "1.5 GiB");
}

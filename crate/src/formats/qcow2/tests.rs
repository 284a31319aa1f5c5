//! Unit tests over small images built by hand: exact descriptor arithmetic and the edge cases
//! qemu-img will not produce.

use super::layout::{FLAG_COMPRESSED, FLAG_COPIED, FLAG_ZERO};
use super::*;
use crate::error::ErrorKind;
use crate::extent::Mapping;
use crate::finding_code::FindingCode;
use crate::native::block_on;
use crate::report::Severity;
use crate::source::MemSource;

const CB: u32 = 9;
const CS: u64 = 1 << CB;

/// A version 3 image with 512-byte clusters: header in cluster 0, refcount table in 1, L1 in
/// 2, L2 in 3; data from cluster 4 on. `l2` entries are written into cluster 3.
struct Builder {
    bytes: Vec<u8>,
}

impl Builder {
    fn new(size: u64) -> Self {
        let mut b = vec![0u8; 4 * CS as usize];
        b[..4].copy_from_slice(header::MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&CB.to_be_bytes());
        b[24..32].copy_from_slice(&size.to_be_bytes());
        b[36..40].copy_from_slice(&1u32.to_be_bytes()); // l1_size
        b[40..48].copy_from_slice(&(2 * CS).to_be_bytes());
        b[48..56].copy_from_slice(&CS.to_be_bytes());
        b[56..60].copy_from_slice(&1u32.to_be_bytes());
        b[96..100].copy_from_slice(&4u32.to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        // L1[0] -> L2 at cluster 3.
        b[2 * CS as usize..2 * CS as usize + 8]
            .copy_from_slice(&(FLAG_COPIED | (3 * CS)).to_be_bytes());
        Builder { bytes: b }
    }
    fn put(&mut self, at: u64, v: &[u8]) -> &mut Self {
        let end = at as usize + v.len();
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        self.bytes[at as usize..end].copy_from_slice(v);
        self
    }
    fn l2(&mut self, index: u64, entry: u64) -> &mut Self {
        self.put(3 * CS + index * 8, &entry.to_be_bytes())
    }
    fn open(&self) -> Result<Qcow2> {
        let set = ImageSet::new(vec![Rc::new(MemSource::new("t.qcow2", self.bytes.clone()))]);
        block_on(Qcow2::open(&set, FileId(0), 0))
    }
}

fn map(q: &Qcow2, start: u64, len: u64) -> Vec<Extent> {
    block_on(q.map(start, len)).unwrap()
}

#[test]
fn standard_zero_unallocated_and_partial_last_cluster() {
    let mut b = Builder::new(3 * CS + 100);
    b.l2(0, FLAG_COPIED | (4 * CS))
        .l2(1, FLAG_ZERO | (5 * CS)) // zero flag with a preallocated host cluster
        .l2(3, FLAG_COPIED | (6 * CS))
        .put(7 * CS - 1, &[0]);
    let q = b.open().unwrap();
    let m = map(&q, 0, 3 * CS + 100);
    let kinds: Vec<(u64, u64, Mapping)> = m
        .iter()
        .map(|e| (e.start, e.len, e.mapping.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                0,
                CS,
                Mapping::Data {
                    file: FileId(0),
                    offset: 4 * CS
                }
            ),
            (CS, CS, Mapping::Zero),
            (2 * CS, CS, Mapping::Unallocated),
            (
                3 * CS,
                100,
                Mapping::Data {
                    file: FileId(0),
                    offset: 6 * CS
                }
            ),
        ]
    );
    // A range starting mid-cluster maps from the matching host byte.
    let m = map(&q, 10, 20);
    assert_eq!(
        m[0].mapping,
        Mapping::Data {
            file: FileId(0),
            offset: 4 * CS + 10
        }
    );
}

#[test]
fn version_2_ignores_bit_0() {
    let mut b = Builder::new(CS);
    b.put(4, &2u32.to_be_bytes()).l2(0, FLAG_ZERO);
    // Version 2: 72-byte header, no feature fields; bit 0 is reserved, the cluster unallocated.
    b.bytes[72..112].fill(0);
    let q = b.open().unwrap();
    assert_eq!(map(&q, 0, CS)[0].mapping, Mapping::Unallocated);
    assert_eq!(q.details()["compat"], "0.10");
}

#[test]
fn compressed_descriptor_length_and_clamp() {
    // 512-byte clusters: x = 62 - 1 = 61 offset bits, then 1 bit of extra sectors.
    let mut b = Builder::new(2 * CS);
    let off = 4 * CS + 100;
    b.l2(0, FLAG_COMPRESSED | (1 << 61) | off) // 1 extra sector: 2 * 512 - 100 bytes
        .l2(1, FLAG_COMPRESSED | (1 << 61) | (6 * CS + 300))
        .put(6 * CS + 400 - 1, &[0]); // the file ends 100 bytes into the second stream
    let q = b.open().unwrap();
    let m = map(&q, 0, 2 * CS);
    match (&m[0].mapping, &m[1].mapping) {
        (
            Mapping::Compressed {
                offset: o0,
                len: l0,
                unit,
                skip: 0,
                ..
            },
            Mapping::Compressed {
                offset: o1,
                len: l1,
                ..
            },
        ) => {
            assert_eq!((*o0, *l0, *unit), (off, 2 * 512 - 100, CS));
            // 2 * 512 - 300 bytes by the descriptor, clamped to the 100 the file has.
            assert_eq!((*o1, *l1), (6 * CS + 300, 100));
        }
        other => panic!("{other:?}"),
    }
    // Mid-cluster start: skip is the offset inside the cluster.
    let m = map(&q, CS + 7, 9);
    assert!(matches!(m[0].mapping, Mapping::Compressed { skip: 7, .. }));
    // A compressed cluster starting past the end of the file, or in the header cluster.
    b.l2(1, FLAG_COMPRESSED | (1 << 40));
    assert!(matches!(
        block_on(b.open().unwrap().map(0, 2 * CS)),
        Err(Error {
            kind: ErrorKind::Truncated,
            ..
        })
    ));
    b.l2(1, FLAG_COMPRESSED | 100);
    assert!(matches!(
        block_on(b.open().unwrap().map(0, 2 * CS)),
        Err(Error {
            kind: ErrorKind::Corrupt,
            ..
        })
    ));
}

#[test]
fn empty_disk_does_not_read_its_l1_table() {
    let mut b = Builder::new(0);
    b.put(36, &0u32.to_be_bytes())
        .put(40, &(1u64 << 50).to_be_bytes());
    let q = b.open().unwrap();
    assert_eq!(q.virtual_size(), 0);
    assert!(map(&q, 0, 0).is_empty());
}

#[test]
fn hostile_header_fields_are_errors() {
    let cases: [(usize, Vec<u8>); 6] = [
        (8, u64::MAX.to_be_bytes().to_vec()), // backing_file_offset overflows
        (16, 2000u32.to_be_bytes().to_vec()), // backing name too long (with offset below)
        (20, 63u32.to_be_bytes().to_vec()),   // cluster_bits
        (24, (u64::MAX - 511).to_be_bytes().to_vec()), // size
        (36, u32::MAX.to_be_bytes().to_vec()), // l1_size
        (60, u32::MAX.to_be_bytes().to_vec()), // nb_snapshots
    ];
    for (at, v) in cases {
        let mut b = Builder::new(CS);
        b.put(8, &200u64.to_be_bytes())
            .put(16, &4u32.to_be_bytes())
            .put(200, b"base");
        b.put(at as u64, &v);
        assert!(b.open().is_err(), "field at {at}");
    }
}

#[test]
fn l2_table_past_eof_is_reported_at_open() {
    let mut b = Builder::new(CS);
    b.put(2 * CS, &(FLAG_COPIED | (100 * CS)).to_be_bytes());
    let q = b.open().unwrap();
    assert!(matches!(
        q.readable(),
        Err(Error {
            kind: ErrorKind::Truncated,
            ..
        })
    ));
    assert!(
        q.findings()
            .iter()
            .any(|f| f.code == FindingCode::Truncated)
    );
    assert!(block_on(q.map(0, CS)).is_err());
}

#[test]
fn missing_backing_file_and_path_names() {
    let mut b = Builder::new(CS);
    let name = b"/srv/images/base.qcow2";
    b.put(8, &200u64.to_be_bytes())
        .put(16, &(name.len() as u32).to_be_bytes())
        .put(200, name);
    let q = b.open().unwrap();
    assert!(matches!(q.backing(), Backing::Missing(n) if n == "/srv/images/base.qcow2"));
    let f = &q.findings()[0];
    assert_eq!(
        (f.code, f.severity),
        (FindingCode::BackingFile, Severity::Critical)
    );
    assert!(
        f.message.contains("path") && f.message.contains("not supplied"),
        "{}",
        f.message
    );
}

#[test]
fn extended_l2_bitmaps() {
    // 16 KiB clusters (the minimum with extended L2 entries): 512-byte subclusters.
    let cs = 16 * 1024u64;
    let mut b = vec![0u8; 5 * cs as usize];
    b[..4].copy_from_slice(header::MAGIC);
    b[4..8].copy_from_slice(&3u32.to_be_bytes());
    b[20..24].copy_from_slice(&14u32.to_be_bytes());
    b[24..32].copy_from_slice(&cs.to_be_bytes());
    b[36..40].copy_from_slice(&1u32.to_be_bytes());
    b[40..48].copy_from_slice(&(2 * cs).to_be_bytes());
    b[48..56].copy_from_slice(&cs.to_be_bytes());
    b[56..60].copy_from_slice(&1u32.to_be_bytes());
    b[72..80].copy_from_slice(&header::INCOMPAT_EXTL2.to_be_bytes());
    b[96..100].copy_from_slice(&4u32.to_be_bytes());
    b[100..104].copy_from_slice(&112u32.to_be_bytes());
    let l1 = 2 * cs as usize;
    b[l1..l1 + 8].copy_from_slice(&(FLAG_COPIED | (3 * cs)).to_be_bytes());
    let l2 = 3 * cs as usize;
    b[l2..l2 + 8].copy_from_slice(&(FLAG_COPIED | (4 * cs)).to_be_bytes());
    // Subcluster 0 allocated, 1 zero, 2 unallocated, 3 allocated.
    let bitmap: u64 = 0b1001 | (0b10 << 32);
    b[l2 + 8..l2 + 16].copy_from_slice(&bitmap.to_be_bytes());
    let set = ImageSet::new(vec![Rc::new(MemSource::new("e.qcow2", b.clone()))]);
    let q = block_on(Qcow2::open(&set, FileId(0), 0)).unwrap();
    let m = map(&q, 0, 4 * 512 + 10);
    let got: Vec<(u64, u64, Mapping)> =
        m.into_iter().map(|e| (e.start, e.len, e.mapping)).collect();
    let data = |offset| Mapping::Data {
        file: FileId(0),
        offset,
    };
    assert_eq!(
        got,
        [
            (0, 512, data(4 * cs)),
            (512, 512, Mapping::Zero),
            (1024, 512, Mapping::Unallocated),
            (1536, 512, data(4 * cs + 1536)),
            (2048, 10, Mapping::Unallocated),
        ]
    );
    // Allocated and zero at once is corrupt.
    let bad = bitmap | (1 << 32);
    b[l2 + 8..l2 + 16].copy_from_slice(&bad.to_be_bytes());
    let set = ImageSet::new(vec![Rc::new(MemSource::new("e.qcow2", b))]);
    let q = block_on(Qcow2::open(&set, FileId(0), 0)).unwrap();
    assert!(matches!(
        block_on(q.map(0, cs)),
        Err(Error {
            kind: ErrorKind::Corrupt,
            ..
        })
    ));
}

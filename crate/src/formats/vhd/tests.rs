//! Unit tests of the VHD reader over hand-built images.

use super::footer::checksum;
use super::*;
use crate::native::block_on;
use crate::source::MemSource;

/// A 16 KiB dynamic VHD with 4 KiB blocks: block 1 stored with half its sectors.
fn image() -> Vec<u8> {
    let mut f = vec![0u8; 2048];
    let mut h = vec![0u8; 1024];
    h[0..8].copy_from_slice(b"cxsparse");
    h[16..24].copy_from_slice(&1536u64.to_be_bytes());
    h[28..32].copy_from_slice(&4u32.to_be_bytes());
    h[32..36].copy_from_slice(&4096u32.to_be_bytes());
    let c = checksum(&h, 36);
    h[36..40].copy_from_slice(&c.to_be_bytes());
    f[512..1536].copy_from_slice(&h);
    f[1536..2048].fill(0xff);
    f[1540..1544].copy_from_slice(&4u32.to_be_bytes());
    f.extend([0xf0]);
    f.resize(2560, 0);
    f.extend(vec![0x5a; 4096]);
    let mut footer = vec![0u8; 512];
    footer[0..8].copy_from_slice(b"conectix");
    footer[16..24].copy_from_slice(&512u64.to_be_bytes());
    footer[48..56].copy_from_slice(&16384u64.to_be_bytes());
    footer[60..64].copy_from_slice(&3u32.to_be_bytes());
    let c = checksum(&footer, 64);
    footer[64..68].copy_from_slice(&c.to_be_bytes());
    f[0..512].copy_from_slice(&footer);
    f.extend(footer);
    f
}

fn open_bytes(data: Vec<u8>) -> Result<Vec<Extent>> {
    let set = ImageSet::new(vec![Rc::new(MemSource::new("t.vhd", data))]);
    let v = block_on(Vhd::open(&set, FileId(0), 0))?;
    let _ = v.details();
    block_on(v.map(0, v.virtual_size()))
}

#[test]
fn maps_bitmap_sectors() {
    let map = open_bytes(image()).unwrap();
    let kinds: Vec<(u64, u64, bool)> = map
        .iter()
        .map(|e| (e.start, e.len, matches!(e.mapping, Mapping::Data { .. })))
        .collect();
    assert_eq!(
        kinds,
        [(0, 4096, false), (4096, 2048, true), (6144, 10240, false)]
    );
    assert_eq!(
        map[1].mapping,
        Mapping::Data {
            file: FileId(0),
            offset: 2560
        }
    );
}

#[test]
fn damaged_bytes_never_panic() {
    let good = image();
    for i in 0..good.len().min(3072) {
        for v in [0x00, 0xff, 0x80] {
            let mut d = good.clone();
            d[i] = v;
            let _ = open_bytes(d);
        }
    }
    for cut in [0, 100, 511, 512, 1000, 2048, 4000] {
        let _ = open_bytes(good[..cut].to_vec());
    }
}

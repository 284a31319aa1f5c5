use super::*;
use crate::codec::{Compressed, Decompress, Serial, decompress};
use crate::formats::qcow2::layout::{FLAG_COMPRESSED, FLAG_COPIED, MAGIC};
use crate::sink::MemSink;
use crate::zero::is_zero;

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// A tiny independent reader: checks the refcounts the way `qemu-img check` does and
/// returns the guest disk.
fn read_back(file: &[u8]) -> Vec<u8> {
    check(file, true)
}

fn check(file: &[u8], inflate: bool) -> Vec<u8> {
    assert_eq!(&file[..4], MAGIC);
    let bits = be32(file, 20);
    let cs = 1u64 << bits;
    assert_eq!(file.len() as u64 % cs, 0, "file ends on a cluster boundary");
    let size = be64(file, 24);
    let l1_len = be32(file, 36) as usize;
    let l1_at = be64(file, 40) as usize;
    let rt_at = be64(file, 48) as usize;
    let rt_clusters = be32(file, 56) as u64;
    let zstd = be32(file, 4) == 3 && file[104] == 1;
    let codec = if zstd { Codec::Zstd } else { Codec::Deflate };
    let nclusters = file.len() as u64 / cs;
    let mut want = vec![0u64; nclusters as usize];
    let mut inc = |off: u64, len: u64| {
        for c in off / cs..=(off + len - 1) / cs {
            want[c as usize] += 1;
        }
    };
    inc(0, cs);
    if l1_len > 0 {
        inc(l1_at as u64, l1_len as u64 * 8);
    }
    inc(rt_at as u64, rt_clusters * cs);
    let rbe = cs / 2;
    let mut rt = vec![];
    for i in 0..(rt_clusters * cs / 8) as usize {
        let b = be64(file, rt_at + i * 8);
        if b != 0 {
            inc(b, cs);
        }
        rt.push(b);
    }
    let x = 62 - (bits - 8);
    let mut disk = vec![0u8; if inflate { size.div_ceil(cs) * cs } else { cs } as usize];
    for i in 0..l1_len {
        let e = be64(file, l1_at + i * 8);
        if e == 0 {
            continue;
        }
        assert_ne!(e & FLAG_COPIED, 0);
        let l2 = e & !FLAG_COPIED;
        inc(l2, cs);
        for j in 0..(cs / 8) as usize {
            let e = be64(file, l2 as usize + j * 8);
            if e == 0 {
                continue;
            }
            let g = if inflate {
                (i * (cs as usize / 8) + j) * cs as usize
            } else {
                0
            };
            let out = &mut disk[g..g + cs as usize];
            if e & FLAG_COMPRESSED != 0 {
                let off = e & ((1 << x) - 1);
                let sectors = (e & !(FLAG_COMPRESSED | FLAG_COPIED)) >> x;
                let len = (sectors + 1) * 512 - (off & 511);
                inc(off, len);
                let end = (off + len).min(file.len() as u64);
                if inflate {
                    decompress(codec, &file[off as usize..end as usize], out).unwrap();
                }
            } else {
                assert_ne!(e & FLAG_COPIED, 0);
                let off = (e & !FLAG_COPIED) as usize;
                inc(off as u64, cs);
                out.copy_from_slice(&file[off..off + cs as usize]);
            }
        }
    }
    for (k, &b) in rt.iter().enumerate() {
        for i in 0..rbe {
            let c = k as u64 * rbe + i;
            let have = if b == 0 {
                0
            } else {
                let at = (b + i * 2) as usize;
                u16::from_be_bytes([file[at], file[at + 1]]) as u64
            };
            let expect = want.get(c as usize).copied().unwrap_or(0);
            assert_eq!(have, expect, "refcount of cluster {c}");
            if b == 0 && c >= nclusters {
                break;
            }
        }
    }
    assert!(
        rt.len() as u64 * rbe >= nclusters,
        "refcounts cover the file"
    );
    disk.truncate(size as usize);
    disk
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            if (i / 700) % 2 == 0 {
                b"qcow2 cluster "[i % 14]
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

/// Convert `disk` through the writer the way the engine does (zero runs skipped).
fn convert(disk: &[u8], opts: &WriteOptions) -> Vec<u8> {
    let mut w = Qcow2Writer::new(opts, disk.len() as u64).unwrap();
    let mut sink = MemSink::default();
    let step = opts.cluster_size as usize * 5;
    pollster::block_on(async {
        for (k, chunk) in disk.chunks(step).enumerate() {
            if !is_zero(chunk) {
                w.write(&mut sink, &Serial, (k * step) as u64, chunk.into())
                    .await
                    .unwrap();
            }
        }
        w.finish(&mut sink).await.unwrap();
    });
    sink.data
}

#[test]
fn round_trips_in_every_mode() {
    for cs in [512u32, 4096, 65536] {
        for (compression, compat) in [
            (None, Qcow2Compat::V1_1),
            (None, Qcow2Compat::V0_10),
            (Some(Codec::Deflate), Qcow2Compat::V0_10),
            (Some(Codec::Zstd), Qcow2Compat::V1_1),
        ] {
            let opts = WriteOptions {
                cluster_size: cs,
                compression,
                compat,
                ..WriteOptions::default()
            };
            // Several L2 tables and refcount blocks at 512-byte clusters; a zero gap; a
            // tail inside the last cluster.
            let mut disk = pattern(700_000, u64::from(cs));
            disk.extend_from_slice(&vec![0; 300_000]);
            disk.extend_from_slice(&pattern(100_001, 9));
            let file = convert(&disk, &opts);
            // The header rounds the size up to whole sectors.
            let mut want = disk.clone();
            want.resize(disk.len().next_multiple_of(512), 0);
            assert_eq!(read_back(&file), want, "{cs} {compression:?} {compat:?}");
        }
    }
}

#[test]
fn empty_disk_has_no_data_clusters() {
    let file = convert(&[0; 1 << 20], &WriteOptions::default());
    // Header, refcount block, L1 table and refcount table only.
    assert_eq!(file.len(), 4 * 65536);
    assert_eq!(read_back(&file), vec![0; 1 << 20]);
    let file = convert(&[], &WriteOptions::default());
    assert_eq!(read_back(&file), Vec::<u8>::new());
}

/// A pool whose "compressed" clusters are one byte: checks the packing bookkeeping,
/// including the refcount ceiling of one host cluster.
struct Tiny;
#[async_trait(?Send)]
impl Pool for Tiny {
    async fn compress_all(&self, _: Codec, inputs: &[&[u8]], _: usize) -> Compressed {
        Ok(inputs.iter().map(|_| Some(vec![0xA5])).collect())
    }
    async fn decompress_all(&self, _: &mut [Decompress<'_>]) -> Result<()> {
        unreachable!()
    }
}

#[test]
fn a_host_cluster_never_passes_the_largest_refcount() {
    // 2 MiB clusters: one L2 table spans more than 65535 clusters.
    let cs = 2 << 20;
    let opts = WriteOptions {
        cluster_size: cs,
        compression: Some(Codec::Deflate),
        ..WriteOptions::default()
    };
    let n = 70_000u64;
    let mut w = Qcow2Writer::new(&opts, n * u64::from(cs)).unwrap();
    let mut sink = MemSink::default();
    let data = vec![1u8; cs as usize];
    pollster::block_on(async {
        for g in 0..n {
            w.write(&mut sink, &Tiny, g * u64::from(cs), data[..].into())
                .await
                .unwrap();
        }
        w.finish(&mut sink).await.unwrap();
    });
    let file = sink.data;
    check(&file, false);
    // The first data cluster is full at 65535 one-byte clusters.
    let rt = be64(&file, 48) as usize;
    let block = be64(&file, rt) as usize;
    let count = |c: usize| u16::from_be_bytes([file[block + 2 * c], file[block + 2 * c + 1]]);
    let counts: Vec<u16> = (0..8).map(count).collect();
    assert!(counts.contains(&u16::MAX), "{counts:?}");
    assert!(counts.iter().filter(|&&c| c > 1).count() >= 2, "{counts:?}");
}

#[test]
fn rejects_what_qemu_cannot_read() {
    let bad = |cluster_size, compression, compat| {
        let opts = WriteOptions {
            cluster_size,
            compression,
            compat,
            ..WriteOptions::default()
        };
        Qcow2Writer::new(&opts, 1 << 30).is_err()
    };
    assert!(bad(1000, None, Qcow2Compat::V1_1));
    assert!(bad(4 << 20, None, Qcow2Compat::V1_1));
    assert!(bad(256, None, Qcow2Compat::V1_1));
    assert!(bad(65536, Some(Codec::Zstd), Qcow2Compat::V0_10));
    assert!(!bad(65536, Some(Codec::Deflate), Qcow2Compat::V0_10));
    // 512-byte clusters reach 128 GiB at most (qemu's 32 MiB L1 table).
    let opts = WriteOptions {
        cluster_size: 512,
        ..WriteOptions::default()
    };
    assert!(Qcow2Writer::new(&opts, 128 << 30).is_ok());
    assert!(Qcow2Writer::new(&opts, (128 << 30) + 1).is_err());
}

//! A DMG of bzip2 (UDBZ) chunks converted by the browser host through a worker pool: the
//! `bzip2` codec travels as its id in `decompress` messages and is decoded by the pure-Rust
//! bzip2 built for wasm32.

use super::wasm_common::{disk, local_pool, raw};
use std::io::Write;
use std::rc::Rc;
use vmdisk::Source;
use vmdisk::codec::Serial;
use vmdisk::sink::MemSink;
use vmdisk::source::MemSource;
use vmdisk::wasm;
use wasm_bindgen_test::wasm_bindgen_test;

/// 128 KiB chunks: eight of them make a batch over the pool's inline limit (256 KiB).
const CHUNK_SECTORS: u64 = 256;
const UDBZ: u32 = 0x8000_0006;
const END: u32 = 0xffff_ffff;

fn be(out: &mut Vec<u8>, words: &[u64], widths: &[usize]) {
    for (&w, &n) in words.iter().zip(widths) {
        out.extend_from_slice(&w.to_be_bytes()[8 - n..]);
    }
}

/// `plain` as a UDIF image whose one block table (in an old-style resource fork, so no base64
/// is needed) lists a bzip2 chunk of `CHUNK_SECTORS` sectors after another.
fn udbz_image(plain: &[u8]) -> Vec<u8> {
    let mut fork = vec![];
    let mut table = b"mish".to_vec();
    let sectors = plain.len() as u64 / 512;
    be(&mut table, &[1, 0, sectors, 0], &[4, 8, 8, 8]);
    table.resize(204, 0);
    for (i, part) in plain.chunks(CHUNK_SECTORS as usize * 512).enumerate() {
        let mut e = bzip2::write::BzEncoder::new(vec![], bzip2::Compression::best());
        e.write_all(part).unwrap();
        let stream = e.finish().unwrap();
        let at = [i as u64 * CHUNK_SECTORS, CHUNK_SECTORS, fork.len() as u64];
        be(
            &mut table,
            &[u64::from(UDBZ), 0, at[0], at[1], at[2], stream.len() as u64],
            &[4, 4, 8, 8, 8, 8],
        );
        fork.extend(stream);
    }
    be(
        &mut table,
        &[u64::from(END), 0, sectors, 0, 0, 0],
        &[4, 4, 8, 8, 8, 8],
    );
    // The resource fork: a 256-byte header (data offset, map offset, data length), the data.
    let mut rsrc = vec![];
    let data_len = 4 + table.len() as u64;
    be(&mut rsrc, &[256, 256 + data_len, data_len], &[4, 4, 4]);
    rsrc.resize(256, 0);
    be(&mut rsrc, &[table.len() as u64], &[4]);
    rsrc.extend(table);
    let mut koly = b"koly".to_vec();
    be(
        &mut koly,
        &[4, 512, 1, 0, 0, fork.len() as u64],
        &[4, 4, 4, 8, 8, 8],
    );
    be(&mut koly, &[fork.len() as u64, rsrc.len() as u64], &[8, 8]);
    koly.resize(0x1ec, 0);
    be(&mut koly, &[sectors], &[8]);
    koly.resize(512, 0);
    let mut out = fork;
    out.extend(rsrc);
    out.extend(koly);
    out
}

#[wasm_bindgen_test]
async fn dmg_bzip2_chunks_convert_through_the_worker_pool() {
    let plain = disk(1 << 20);
    let image = udbz_image(&plain);
    let src: Rc<dyn Source> = Rc::new(MemSource::new("disk.dmg", image));
    let pool = wasm::WorkerPool::from_js(&local_pool(3)).unwrap().unwrap();
    let mut sink = MemSink::default();
    wasm::convert_sources(vec![src.clone()], &raw(), &mut sink, &pool, &mut |_, _| {
        true
    })
    .await
    .unwrap();
    assert!(sink.data == plain, "the pool misread the bzip2 chunks");
    // Inline (no pool) too.
    let mut inline = MemSink::default();
    wasm::convert_sources(vec![src], &raw(), &mut inline, &Serial, &mut |_, _| true)
        .await
        .unwrap();
    assert!(inline.data == plain, "bzip2 chunks misread inline");
}

//! The driver through the library API: arbitrary (unaligned) map ranges, data cut by the end of the
//! file, a short last compressed sector.

use super::*;

// ---------------------------------------------------------------------------------------------
// The driver through the library API: arbitrary (unaligned) map ranges

/// Open `files` with the library and return the opened set.
fn open_lib(dir: &Path, files: &[&str]) -> vmdisk::OpenedImage {
    let sources: Vec<std::rc::Rc<dyn vmdisk::Source>> = files
        .iter()
        .map(|f| {
            std::rc::Rc::new(vmdisk::native::FileSource::open(&path(dir, f)).unwrap())
                as std::rc::Rc<dyn vmdisk::Source>
        })
        .collect();
    vmdisk::native::block_on(vmdisk::open(vmdisk::ImageSet::new(sources))).unwrap()
}

/// The guest bytes `[start, start + len)` of a single-layer image, built from its map alone.
fn materialise(opened: &vmdisk::OpenedImage, start: u64, len: u64) -> Vec<u8> {
    use vmdisk::Mapping;
    let image = opened.image.as_deref().unwrap();
    let extents = vmdisk::native::block_on(image.map(start, len)).unwrap();
    let mut out = vec![];
    let mut pos = start;
    for e in &extents {
        assert_eq!(e.start, pos, "extents tile the range");
        assert!(e.len > 0);
        pos += e.len;
        match &e.mapping {
            Mapping::Zero | Mapping::Unallocated => out.resize(out.len() + e.len as usize, 0),
            Mapping::Data { file, offset } => {
                let mut buf = vec![0; e.len as usize];
                vmdisk::native::block_on(opened.set.file(*file).read_at(*offset, &mut buf))
                    .unwrap();
                out.extend(buf);
            }
            Mapping::Compressed {
                file,
                offset,
                len,
                codec,
                unit,
                skip,
            } => {
                let mut input = vec![0; *len as usize];
                vmdisk::native::block_on(opened.set.file(*file).read_at(*offset, &mut input))
                    .unwrap();
                let mut whole = vec![0; *unit as usize];
                vmdisk::codec::decompress(*codec, &input, &mut whole).unwrap();
                out.extend(&whole[*skip as usize..(*skip + e.len) as usize]);
            }
        }
    }
    assert_eq!(pos, start + len, "extents cover the range");
    out
}

#[test]
fn unaligned_map_ranges_match_qemu_content() {
    let dir = &scratch();
    let size = 1024 * 1024 + 2560;
    let mut data = text(size, 11);
    data[300_000..400_000].copy_from_slice(&noise(100_000, 12));
    data[600_000..700_000].fill(0);
    convert_from_raw(dir, "cz.qcow2", &data, &["-c", "-o", "cluster_size=16k"]);
    convert_from_raw(
        dir,
        "zs.qcow2",
        &data,
        &["-c", "-o", "compression_type=zstd"],
    );
    create(
        dir,
        "ex.qcow2",
        "extended_l2=on,cluster_size=32k",
        &size.to_string(),
        &[],
    );
    qemu_io(
        "ex.qcow2",
        &[
            "write -P 0x11 1k 3k",
            "write -z 40k 5k",
            "write -P 0x12 70k 40k",
        ],
        dir,
    );
    for img in ["cz.qcow2", "zs.qcow2", "ex.qcow2"] {
        qemu_img(&["convert", "-O", "raw", img, "ref.raw"], dir);
        let reference = std::fs::read(path(dir, "ref.raw")).unwrap();
        let opened = open_lib(dir, &[img]);
        let image = opened.image.as_deref().unwrap();
        assert_eq!(image.virtual_size(), size as u64);
        for (start, len) in [
            (0u64, size as u64),
            (1, 1),
            (5000, 70_000),
            (16_383, 2),
            (299_999, 100_002),
            (size as u64 - 3000, 3000),
            (size as u64 - 1, 1),
        ] {
            let got = materialise(&opened, start, len);
            assert!(
                got == reference[start as usize..(start + len) as usize],
                "{img}: bytes {start}+{len} differ"
            );
        }
        // Outside the disk is an error, not a panic.
        assert!(vmdisk::native::block_on(image.map(size as u64 - 1, 2)).is_err());
    }
}

#[test]
fn data_cluster_cut_by_end_of_file_reads_zeros_like_qemu() {
    let dir = &scratch();
    written_image(dir, "qcow2", "base.qcow2", "1M", &["write -P 0x77 0 1M"]);
    create_overlay(dir, "qcow2", "", "top.qcow2", "1M", ("base.qcow2", "qcow2"));
    qemu_io("top.qcow2", &["write -P 0x78 512k 64k"], dir);
    // The data cluster is the last one in the file: cut it in half. qemu reads zeros past the
    // end of the file (not the backing file's data), and so must vmdisk.
    let f = path(dir, "top.qcow2");
    let len = std::fs::metadata(&f).unwrap().len();
    truncate(&f, len - 32 * 1024);
    let raw = raw_like_qemu(dir, &["top.qcow2", "base.qcow2"]);
    assert_eq!(
        (raw[512 * 1024], raw[544 * 1024], raw[600 * 1024]),
        (0x78, 0, 0x77)
    );
}

#[test]
fn compressed_cluster_whose_last_sector_is_short() {
    let dir = &scratch();
    let size = 256 * 1024;
    convert_from_raw(dir, "short.qcow2", &text(size, 21), &["-c"]);
    // Drop the zero padding after the last compressed stream: the descriptor's sector count
    // now runs past the end of the file, which qemu tolerates (qcow2.txt: the data need not
    // fill the last sector).
    let f = path(dir, "short.qcow2");
    let bytes = std::fs::read(&f).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() as u64 + 1;
    assert!(end < bytes.len() as u64, "the file has padding to drop");
    assert!(!end.is_multiple_of(512), "the stream ends inside a sector");
    let l1 = read_be64(&f, 40);
    let l2 = read_be64(&f, l1) & 0x00ff_ffff_ffff_fe00;
    let last = read_be64(&f, l2 + 3 * 8);
    assert!(last & 1 << 62 != 0 && (last & ((1 << 54) - 1)) < end);
    truncate(&f, end);
    raw_like_qemu(dir, &["short.qcow2"]);
    let opened = open_lib(dir, &["short.qcow2"]);
    let got = materialise(&opened, 0, size as u64);
    assert!(got == text(size, 21));
}

use super::plan::PAGE;
use super::*;
use crate::codec::Serial;
use crate::extent::FileId;
use crate::format::Format;
use crate::formats::raw::RawImage;
use crate::sink::MemSink;
use crate::source::Reads;
use crate::source::{MemSource, mem_backed_source};
use crate::writer::raw::RawWriter;
use std::cell::RefCell;
use std::rc::Rc;

/// A source whose reads finish only after the engine has started writing (each `read_into`
/// pends once), with a hole map, recording where each chunk's first read lands in memory.
struct Lagging {
    inner: MemSource,
    holes: Vec<(u64, u64)>,
    misaligned: RefCell<usize>,
}

mem_backed_source!(Lagging {
    async fn read_into(&self, reads: Reads, mut buf: Vec<u8>) -> Result<Vec<u8>> {
        let mut pended = false;
        std::future::poll_fn(|cx| {
            if pended {
                return std::task::Poll::Ready(());
            }
            pended = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        })
        .await;
        for (offset, range) in reads {
            if !(buf[range.start..].as_ptr() as usize).is_multiple_of(PAGE) && offset % CHUNK == 0 {
                *self.misaligned.borrow_mut() += 1;
            }
            self.inner.read_at(offset, &mut buf[range]).await?;
        }
        Ok(buf)
    }
    async fn data_ranges(&self, start: u64, len: u64) -> Option<Vec<(u64, u64)>> {
        let mut out = vec![];
        let mut pos = start;
        for &(s, e) in &self.holes {
            if s > pos && pos < start + len {
                out.push((pos, s.min(start + len)));
            }
            pos = pos.max(e);
        }
        if pos < start + len {
            out.push((pos, start + len));
        }
        Some(out)
    }
});

/// Two windows and an odd tail: data, a whole empty window, data in the last sector.
fn disk() -> (Vec<u8>, Vec<(u64, u64)>) {
    let size = 2 * MAP_WINDOW + (3 << 20) + 517;
    let mut data: Vec<u8> = (0..size).map(|i| (i % 251) as u8 | 1).collect();
    let holes = vec![(5 << 20, MAP_WINDOW + (7 << 20)), (size - 4096, size - 100)];
    for &(s, e) in &holes {
        data[s as usize..e as usize].fill(0);
    }
    (data, holes)
}

fn run(progress: &mut dyn FnMut(u64, u64) -> bool) -> (Vec<u8>, Rc<Lagging>, Result<Vec<u8>>) {
    let (data, holes) = disk();
    let src = Rc::new(Lagging {
        inner: MemSource::new("disk", data.clone()),
        holes,
        misaligned: RefCell::new(0),
    });
    let set = ImageSet::new(vec![src.clone()]);
    let image = RawImage::new(Format::Raw, FileId(0), src.clone());
    let mut writer = RawWriter::new(image.virtual_size());
    let mut sink = MemSink::default();
    let result = pollster::block_on(convert(
        &set,
        &image,
        &mut writer,
        &mut sink,
        &Serial,
        progress,
    ));
    (data, src, result.map(|()| sink.data))
}

#[test]
fn pipelined_reads_copy_every_byte_with_monotonic_progress() {
    let mut seen = vec![];
    let (data, src, out) = run(&mut |done, total| {
        seen.push((done, total));
        true
    });
    assert!(out.unwrap() == data, "output differs from the disk");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert_eq!(seen.last().map(|p| p.0), Some(data.len() as u64));
    assert_eq!(
        *src.misaligned.borrow(),
        0,
        "chunk buffers must be page-aligned"
    );
}

#[test]
fn progress_returning_false_cancels() {
    let mut calls = 0;
    let (_, _, out) = run(&mut |_, _| {
        calls += 1;
        calls < 3
    });
    assert!(
        matches!(&out, Err(e) if e.is_cancelled()),
        "{:?}",
        out.err()
    );
    assert_eq!(calls, 3);
}

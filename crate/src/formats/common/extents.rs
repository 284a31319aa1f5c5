//! Building the extents a driver's `map` returns.

use crate::error::{Error, Result};
use crate::extent::{Extent, FileId, Mapping};
use crate::source::Source;

/// The end of guest range `start + len`, which must lie inside `size`.
pub(crate) fn range_end(start: u64, len: u64, size: u64) -> Result<u64> {
    start
        .checked_add(len)
        .filter(|&e| e <= size)
        .ok_or_else(|| {
            Error::invalid(format!(
                "range {start}+{len} is outside the virtual size {size}"
            ))
        })
}

/// `[start, end)` cut where it crosses a multiple of `size` (a table's span, a block, a
/// cluster): each piece as the index of the block it lies in, and its own `[from, to)`.
pub(crate) fn blocks(start: u64, end: u64, size: u64) -> impl Iterator<Item = (u64, u64, u64)> {
    let mut pos = start;
    std::iter::from_fn(move || {
        (pos < end).then(|| {
            let index = pos / size;
            let to = ((index + 1) * size).min(end);
            (index, std::mem::replace(&mut pos, to), to)
        })
    })
}

pub(crate) fn extent(start: u64, len: u64, mapping: Mapping) -> Extent {
    Extent {
        start,
        len,
        mapping,
    }
}

/// Append guest `[start, start + len)` as `mapping`, merged with the extent before it.
pub(crate) fn push(out: &mut Vec<Extent>, start: u64, len: u64, mapping: Mapping) {
    Extent::push_merged(out, extent(start, len, mapping));
}

/// Guest `[pos, end)` stored from host offset `at` (which starts inside the file). A cluster
/// may end past the end of the file (the last one of a cut file): qemu reads zeros there.
pub(crate) fn push_data(
    out: &mut Vec<Extent>,
    file: FileId,
    flen: u64,
    pos: u64,
    end: u64,
    at: u64,
) {
    let inside = flen.saturating_sub(at).min(end - pos);
    push(out, pos, inside, Mapping::Data { file, offset: at });
    push(out, pos + inside, end - pos - inside, Mapping::Zero);
}

/// Guest `[start, start + len)` read straight from the same range of file `file` (raw content,
/// a fixed VHD): sparse holes of the source map to zeros, like qemu-img map.
pub(crate) async fn map_plain(
    file: FileId,
    source: &dyn Source,
    start: u64,
    len: u64,
) -> Vec<Extent> {
    let data = |from: u64, to: u64| extent(from, to - from, Mapping::Data { file, offset: from });
    let Some(ranges) = source.data_ranges(start, len).await else {
        return vec![data(start, start + len)];
    };
    let mut out = vec![];
    let mut pos = start;
    for (s, e) in ranges {
        let (s, e) = (s.clamp(pos, start + len), e.clamp(pos, start + len));
        if s >= e {
            continue;
        }
        push(&mut out, pos, s - pos, Mapping::Zero);
        Extent::push_merged(&mut out, data(s, e));
        pos = e;
    }
    push(&mut out, pos, start + len - pos, Mapping::Zero);
    out
}

#[cfg(test)]
mod tests {
    use super::blocks;

    #[test]
    fn blocks_cut_a_range_at_multiples_of_the_size() {
        let cut: Vec<_> = blocks(5, 25, 10).collect();
        assert_eq!(cut, [(0, 5, 10), (1, 10, 20), (2, 20, 25)]);
        assert_eq!(blocks(20, 30, 10).collect::<Vec<_>>(), [(2, 20, 30)]);
        assert_eq!(blocks(7, 7, 4).count(), 0);
    }
}

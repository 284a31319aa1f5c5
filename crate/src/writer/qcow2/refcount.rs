//! Host cluster allocation and refcounts: the append pointer, the refcount block of the
//! current range, and the byte-wise packing of compressed clusters.

use super::Qcow2Writer;
use crate::error::{Error, Result};
use crate::formats::qcow2::layout::{
    FLAG_COMPRESSED, MAX_OFFSET, MAX_REFTABLE_BYTES, compressed_offset_bits,
};
use crate::sink::Sink;

/// The output may end at host byte `end` only inside what a qcow2 offset addresses.
pub(super) fn check_end(end: u64) -> Result<()> {
    if end > MAX_OFFSET {
        return Err(Error::unsupported("the qcow2 output would pass 64 PiB"));
    }
    Ok(())
}

/// A refcount table of `bytes` must stay inside what qemu opens (at cluster size `cs`).
pub(super) fn check_reftable(bytes: u64, cs: u64) -> Result<()> {
    if bytes > MAX_REFTABLE_BYTES {
        return Err(Error::unsupported(format!(
            "the qcow2 output outgrows qemu's refcount table limit at cluster size {cs}"
        )));
    }
    Ok(())
}

impl Qcow2Writer {
    /// Refcount entries per refcount block.
    pub(super) fn rbe(&self) -> u64 {
        self.cs / 2
    }

    /// Allocate one whole host cluster at the append pointer; returns its offset.
    pub(super) async fn alloc(&mut self, sink: &mut dyn Sink) -> Result<u64> {
        if self.next / self.rbe() != self.block_range {
            self.next_block(sink).await?;
        }
        let c = self.next;
        let off = c * self.cs;
        check_end(off + self.cs)?;
        self.next += 1;
        let i = (c % self.rbe()) as usize;
        self.block[i] = 1;
        Ok(off)
    }

    /// The append pointer entered a new range: write the finished block and put the new
    /// range's block at the range's first cluster.
    pub(super) async fn next_block(&mut self, sink: &mut dyn Sink) -> Result<()> {
        self.write_block(sink).await?;
        let c = self.next;
        debug_assert_eq!(c % self.rbe(), 0, "ranges are entered at their start");
        check_reftable((self.reftable.len() as u64 + 1) * 8, self.cs)?;
        self.block_range = c / self.rbe();
        self.tail = 0;
        self.block.fill(0);
        self.block[0] = 1;
        self.block_at = c;
        self.reftable.push(c * self.cs);
        self.next = c + 1;
        Ok(())
    }

    pub(super) async fn write_block(&mut self, sink: &mut dyn Sink) -> Result<()> {
        let bytes: Vec<u8> = self.block.iter().flat_map(|c| c.to_be_bytes()).collect();
        sink.write_at(self.block_at * self.cs, &bytes).await
    }

    /// Append a compressed cluster's bytes; returns the L2 entry.
    pub(super) async fn place_compressed(
        &mut self,
        sink: &mut dyn Sink,
        bytes: &[u8],
    ) -> Result<u64> {
        let (cs, rbe) = (self.cs, self.rbe());
        let n = bytes.len() as u64;
        debug_assert!(n > 0 && n < cs);
        let t = self.tail;
        let (c0, c1) = (t / cs, (t + n - 1) / cs);
        // Go on in the partly used cluster c0 (its range's block is the one in memory): within
        // it, or into the next cluster when c0 is the last one allocated and the next one
        // belongs to the same range (else it holds a new range's refcount block). Never past
        // the largest refcount.
        let packs = t != 0
            && self.block[(c0 % rbe) as usize] < u16::MAX
            && (c1 == c0 || (c1 == c0 + 1 && c1 == self.next && c1 / rbe == c0 / rbe));
        let at = if packs {
            self.block[(c0 % rbe) as usize] += 1;
            if c1 > c0 {
                self.next += 1;
                self.block[(c1 % rbe) as usize] = 1;
            }
            t
        } else {
            self.alloc(sink).await?
        };
        self.tail = if (at + n).is_multiple_of(cs) {
            0
        } else {
            at + n
        };
        self.push(sink, at, bytes).await?;
        let x = compressed_offset_bits(self.cluster_bits);
        let sectors = (at + n - 1) / 512 - at / 512;
        if at >= 1 << x || sectors >= 1 << (self.cluster_bits - 8) {
            return Err(Error::unsupported(format!(
                "compressed data at offset {at} is out of reach of a qcow2 descriptor"
            )));
        }
        Ok(FLAG_COMPRESSED | sectors << x | at)
    }
}

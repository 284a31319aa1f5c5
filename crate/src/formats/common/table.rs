//! A bounded cache of recently read allocation tables (qcow L2, QED L2, Parallels BAT chunks).

use crate::error::Result;
use crate::source::{Source, read_vec};
use std::cell::RefCell;
use std::rc::Rc;

/// How table entries are stored.
#[derive(Clone, Copy)]
pub(crate) enum Word {
    Be64,
    Le64,
    Le32,
}

impl Word {
    fn width(self) -> usize {
        match self {
            Word::Le32 => 4,
            _ => 8,
        }
    }

    fn decode(self, c: &[u8]) -> u64 {
        match self {
            Word::Be64 => u64::from_be_bytes(c.try_into().expect("8 bytes")),
            Word::Le64 => u64::from_le_bytes(c.try_into().expect("8 bytes")),
            Word::Le32 => u64::from(u32::from_le_bytes(c.try_into().expect("4 bytes"))),
        }
    }
}

/// A few recently used tables (or table chunks), keyed by file offset, most recent first.
pub(crate) struct TableCache {
    word: Word,
    max: usize,
    slots: RefCell<Vec<(u64, Rc<[u64]>)>>,
}

impl TableCache {
    pub(crate) fn new(word: Word, max: usize) -> Self {
        TableCache {
            word,
            max: max.max(1),
            slots: RefCell::new(vec![]),
        }
    }

    /// The `count` entries at file offset `offset` (callers bound `count`).
    pub(crate) async fn get(
        &self,
        src: &dyn Source,
        offset: u64,
        count: usize,
        what: &str,
    ) -> Result<Rc<[u64]>> {
        {
            let mut slots = self.slots.borrow_mut();
            if let Some(i) = slots
                .iter()
                .position(|(o, t)| *o == offset && t.len() == count)
            {
                let hit = slots.remove(i);
                let table = hit.1.clone();
                slots.insert(0, hit);
                return Ok(table);
            }
        }
        let width = self.word.width();
        let bytes = read_vec(src, offset, (count * width) as u64, what).await?;
        let table: Rc<[u64]> = bytes
            .chunks_exact(width)
            .map(|c| self.word.decode(c))
            .collect();
        let mut slots = self.slots.borrow_mut();
        slots.insert(0, (offset, table.clone()));
        slots.truncate(self.max);
        Ok(table)
    }
}

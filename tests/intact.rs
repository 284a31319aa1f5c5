//! The integrity walk at open (`formats/common/intact.rs`): images qemu-img made, cut with a
//! truncate after their tables, give one critical `truncated` finding whose byte count matches
//! `qemu-img map` of the uncut image; entries pointing at the same host bytes give `corrupt`.

mod common;
use common::*;

#[path = "intact/cut.rs"]
mod cut;
#[path = "intact/files.rs"]
mod files;
#[path = "intact/overlap.rs"]
mod overlap;
#[path = "intact/tables.rs"]
mod tables;

//! Backing chains: flattening an image's layers into one extent map, and checking that every
//! layer can be read before anything is written.

use crate::error::{Error, Result};
use crate::extent::{Extent, Mapping};
use crate::image::{Backing, Image};

/// An extent after following the backing chain: `depth` is the layer it was found in
/// (0 = the image itself); `Unallocated` at depth d means no layer down to d stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub extent: Extent,
    pub depth: usize,
}

/// The extents of `[start, start + len)` with backing layers flattened in.
pub async fn resolved_map(image: &dyn Image, start: u64, len: u64) -> Result<Vec<Resolved>> {
    let mut out = vec![];
    resolve_into(image, start, len, 0, &mut out).await?;
    Ok(out)
}

async fn resolve_into(
    image: &dyn Image,
    start: u64,
    len: u64,
    depth: usize,
    out: &mut Vec<Resolved>,
) -> Result<()> {
    let extents = image.map(start, len).await?;
    check_cover(&extents, start, len)?;
    for extent in extents {
        if extent.mapping != Mapping::Unallocated {
            out.push(Resolved { extent, depth });
            continue;
        }
        match image.backing() {
            Backing::None => out.push(Resolved { extent, depth }),
            Backing::Missing(name) => return Err(missing_backing(&name)),
            Backing::Present(backing) => {
                // The part past the backing image's end reads as zeros of this layer.
                let inside = backing
                    .virtual_size()
                    .saturating_sub(extent.start)
                    .min(extent.len);
                if inside > 0 {
                    Box::pin(resolve_into(backing, extent.start, inside, depth + 1, out)).await?;
                }
                if inside < extent.len {
                    let rest = Extent {
                        start: extent.start + inside,
                        len: extent.len - inside,
                        mapping: Mapping::Unallocated,
                    };
                    out.push(Resolved {
                        extent: rest,
                        depth,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A driver bug must not turn into wrong output: the map must tile the range exactly.
fn check_cover(extents: &[Extent], start: u64, len: u64) -> Result<()> {
    let mut pos = start;
    for e in extents {
        if e.start != pos || e.len == 0 {
            return Err(Error::corrupt(format!(
                "extent map has a gap or overlap at guest offset {pos}"
            )));
        }
        pos = e.end();
    }
    if pos != start + len {
        return Err(Error::corrupt(format!(
            "extent map ends at {pos}, expected {}",
            start + len
        )));
    }
    Ok(())
}

/// The layers under `image`, nearest first, and the name (as written) of the backing file the
/// chain ends in when that file was not supplied.
pub fn backing_layers(image: &dyn Image) -> (Vec<&dyn Image>, Option<String>) {
    let mut layers = vec![];
    let mut layer = image;
    loop {
        match layer.backing() {
            Backing::None => return (layers, None),
            Backing::Missing(name) => return (layers, Some(name)),
            Backing::Present(b) => {
                layers.push(b);
                layer = b;
            }
        }
    }
}

/// Fails before anything is written when some layer cannot be read.
pub fn check_readable(image: &dyn Image) -> Result<()> {
    image.readable()?;
    let (layers, missing) = backing_layers(image);
    for layer in layers {
        layer.readable()?;
    }
    match missing {
        Some(name) => Err(missing_backing(&name)),
        None => Ok(()),
    }
}

fn missing_backing(name: &str) -> Error {
    Error::missing(format!(
        "backing file {name} was not supplied with the image"
    ))
}

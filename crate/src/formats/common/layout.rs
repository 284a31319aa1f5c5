//! On-disk structures declared from a table of spec offsets ([`on_disk!`]), and the field table
//! a cut buffer is read by ([`OnDisk`], used by `bytes::whole_fields`).

/// One field of an on-disk structure: where it starts, its size, and the piece a buffer that
/// ends inside it keeps whole (the field, or one word of an array read word by word).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    start: usize,
    size: usize,
    unit: usize,
}

impl Field {
    pub(crate) const fn new(start: usize, size: usize, unit: usize) -> Field {
        // Evaluated at compile time in `on_disk!`: a unit must tile its field.
        assert!(unit > 0 && size.is_multiple_of(unit));
        Field { start, size, unit }
    }

    /// How many of the first `len` bytes of the structure end on a whole unit of this field
    /// or before it: the field's end, the last whole unit inside it, or 0 before its start.
    pub(crate) fn kept(&self, len: usize) -> usize {
        if len < self.start {
            return 0;
        }
        let inside = (len - self.start).min(self.size);
        self.start + inside / self.unit * self.unit
    }
}

/// A structure [`on_disk!`] declared: its fields, in order.
pub(crate) trait OnDisk:
    zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::KnownLayout
{
    const FIELDS: &'static [Field];
}

/// Declares an on-disk structure from a table that gives each field's offset in the spec:
///
/// ```text
/// on_disk! {
///     /// The pre-header and a version 1.1 header as stored.
///     #[derive(Clone, Copy)]
///     pub(crate) struct VdiHeader: 0x1d8 {
///         0x000 text: [u8; 64],
///         0x040 signature: U32,
///         ...
///         0x15c geometry: [U32; 4] as each U32,
///         ...
///     }
/// }
/// ```
///
/// It is the one place the layout rules live: a `#[repr(C)]` struct of unaligned zerocopy
/// fields (each with the struct's visibility), a compile-time assert per field that it lies at
/// the stated offset and one that the whole has the stated size, so a mistyped field fails the
/// build rather than misreads a file; and its [`OnDisk`] field table, computed from the same
/// fields. `as each T` makes a cut buffer keep whole `T`s of an array instead of the array.
/// One invocation may declare several structures (a file's layout section).
macro_rules! on_disk {
    (@unit $ty:ty) => { ::core::mem::size_of::<$ty>() };
    (@unit $ty:ty, $unit:ty) => { ::core::mem::size_of::<$unit>() };
    ($(
        $(#[$attr:meta])*
        $vis:vis struct $name:ident : $len:tt {
            $( $(#[$field_attr:meta])* $offset:literal $field:ident : $ty:ty $(as each $unit:ty)? ),*
            $(,)?
        }
    )+) => {$(
        $(#[$attr])*
        #[derive(
            ::zerocopy::FromBytes,
            ::zerocopy::IntoBytes,
            ::zerocopy::KnownLayout,
            ::zerocopy::Immutable,
            ::zerocopy::Unaligned,
        )]
        #[repr(C)]
        $vis struct $name {
            $( $(#[$field_attr])* $vis $field: $ty, )*
        }

        $( const _: () = assert!(::core::mem::offset_of!($name, $field) == $offset); )*
        const _: () = assert!(::core::mem::size_of::<$name>() as u64 == $len as u64);

        impl $crate::formats::common::layout::OnDisk for $name {
            const FIELDS: &'static [$crate::formats::common::layout::Field] = &[$(
                $crate::formats::common::layout::Field::new(
                    ::core::mem::offset_of!($name, $field),
                    ::core::mem::size_of::<$ty>(),
                    $crate::formats::common::layout::on_disk!(@unit $ty $(, $unit)?),
                ),
            )*];
        }
    )+};
}

pub(crate) use on_disk;

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::little_endian::{U16, U32};

    on_disk! {
        struct Sample: 12 {
            0 tag: [u8; 2],
            2 count: U16,
            4 words: [U32; 2] as each U32,
        }
    }

    #[test]
    fn fields_follow_the_table() {
        let starts: Vec<usize> = Sample::FIELDS.iter().map(|f| f.start).collect();
        assert_eq!(starts, [0, 2, 4]);
        let kept: Vec<usize> = (0..=12).map(|n| Sample::FIELDS[2].kept(n)).collect();
        assert_eq!(kept, [0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12]);
        assert_eq!(Sample::FIELDS[0].kept(1), 0);
        assert_eq!(Sample::FIELDS[0].kept(7), 2);
    }
}

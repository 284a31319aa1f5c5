//! Allocation units: how many bytes one unit of a capacity or a memory size is.

/// "byte", "byte * 2^30", "byte*2^20", "byte * 1024^3", "gibibyte" style (DSP0004 programmatic
/// units) and the old "KiloBytes"/"MegaBytes"/"GigaBytes"/"TeraBytes" (and "KB".."TB") words,
/// which exporters mean as powers of 1024: the multiplier in bytes, None when unknown, not a
/// byte multiple (e.g. "hertz * 10^6") or too big for 64 bits.
pub fn allocation_units(units: &str) -> Option<u64> {
    let units = units.trim();
    if let Some(m) = legacy_unit_word(units) {
        return Some(m);
    }
    let mut multiplier: u64 = 1;
    let mut saw_byte = false;
    for factor in units.split('*').map(str::trim) {
        let m = match byte_unit(factor) {
            Some(m) if !saw_byte => {
                saw_byte = true;
                m
            }
            Some(_) => return None,
            None => number_factor(factor)?,
        };
        multiplier = multiplier.checked_mul(m)?;
    }
    saw_byte.then_some(multiplier)
}

pub(super) fn legacy_unit_word(word: &str) -> Option<u64> {
    let shift = match word.to_ascii_lowercase().as_str() {
        "bytes" => 0,
        "kilobytes" | "kb" => 10,
        "megabytes" | "mb" => 20,
        "gigabytes" | "gb" => 30,
        "terabytes" | "tb" => 40,
        _ => return None,
    };
    Some(1 << shift)
}

/// "byte" with an optional DSP0004 decimal or binary prefix ("kilobyte", "gibibyte").
pub(super) fn byte_unit(factor: &str) -> Option<u64> {
    let lower = factor.to_ascii_lowercase();
    let prefix = lower.strip_suffix("byte")?;
    let (base, exp): (u64, u32) = match prefix {
        "" => return Some(1),
        "kilo" => (10, 3),
        "mega" => (10, 6),
        "giga" => (10, 9),
        "tera" => (10, 12),
        "peta" => (10, 15),
        "exa" => (10, 18),
        "kibi" => (2, 10),
        "mebi" => (2, 20),
        "gibi" => (2, 30),
        "tebi" => (2, 40),
        "pebi" => (2, 50),
        "exbi" => (2, 60),
        _ => return None,
    };
    base.checked_pow(exp)
}

/// "1024", "2^30", "2 ^ 30": a positive whole multiplier.
pub(super) fn number_factor(factor: &str) -> Option<u64> {
    let (base, exp) = match factor.split_once('^') {
        Some((b, e)) => (b.trim(), Some(e.trim())),
        None => (factor, None),
    };
    let base = digits(base)?;
    let value = match exp {
        Some(e) => base.checked_pow(u32::try_from(digits(e)?).ok()?)?,
        None => base,
    };
    (value > 0).then_some(value)
}

/// Plain ASCII digits only (no sign, no spaces), as u64.
pub(super) fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

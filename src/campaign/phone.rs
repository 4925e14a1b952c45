//! Phone numbers: E.164 normalization and the time zones of a number's prefix.
//!
//! Numbers are parsed and validated by libphonenumber's rules and metadata from the
//! `phonenumber` crate: plain digit forms by a replay of the crate's steps that matches the
//! metadata patterns with per-thread regexes (module `fast`, so threads run in parallel), and
//! everything else by the crate itself; both give the same answers (tested). Letters always go
//! to the crate, and are accepted only where libphonenumber accepts them (vanity numbers such as
//! `1-800-FLOWERS`, see [`VANITY_MIN_LETTERS`]). Time zones come from libphonenumber's prefix →
//! zones data, compiled into `phone_zones.rs` by `tools/gen-phone-zones.py` (see
//! `THIRD_PARTY_NOTICES.md`).

use std::fmt::{self, Write as _};
use std::sync::{LazyLock, Once, PoisonError};

use phonenumber::country;

#[path = "phone_zones.rs"]
mod phone_zones;

pub use phone_zones::SOURCE_VERSION as ZONE_DATA_VERSION;

/// The region used for numbers written in national form (`dialer.default_region`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region(country::Id);

impl Region {
    /// Parses an ISO 3166 region code such as `US` or `es`; `None` when libphonenumber has no
    /// metadata for it.
    pub fn parse(code: &str) -> Option<Region> {
        let id: country::Id = code.trim().to_ascii_uppercase().parse().ok()?;
        phonenumber::metadata::DATABASE.by_id(id.as_ref())?;
        Some(Region(id))
    }

    /// The region code, upper case (`US`).
    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a phone number was rejected.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum PhoneError {
    #[error("phone number is empty: write it in international form like +14155550100")]
    Empty,
    #[error("`{0}` is not a valid phone number: write it in international form like +14155550100")]
    Invalid(String),
    #[error(
        "`{number}` is not a valid phone number in region `{region}` (`dialer.default_region`): \
         write it in international form like +14155550100"
    )]
    InvalidNational { number: String, region: Region },
    #[error("`{0}` has an extension, which cannot be dialed: remove the extension")]
    Extension(String),
    #[error(
        "`{0}` is not a valid phone number: it has a letter among its digits (O for 0? l for 1?); \
         write it with digits only (letters are read as keypad digits only in vanity numbers \
         with 3 or more, like 1-800-FLOWERS)"
    )]
    Letters(String),
}

/// Normalizes `raw` to E.164 (`+14155550100`), reading national forms in `default_region`.
///
/// Spaces, dashes, dots and parentheses are ignored and a leading `00` means international
/// (`0034 600 123 456` → `+34600123456`). The number must be valid by libphonenumber's rules
/// (`phonenumber::is_valid`); one with an extension is rejected. Letters are read as keypad
/// digits only in a vanity number with 3 or more of them (`1-800-FLOWERS`), as libphonenumber
/// does; 1 or 2 letters (`(212) 555-O1O1`) reject the number ([`PhoneError::Letters`]).
pub fn normalize(raw: &str, default_region: &Region) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let database = database();
    let typo = || (1..VANITY_MIN_LETTERS).contains(&letters_in_number(trimmed));
    let invalid = |international: bool| {
        let number = shorten(trimmed);
        if typo() {
            PhoneError::Letters(number)
        } else if international {
            PhoneError::Invalid(number)
        } else {
            PhoneError::InvalidNational {
                number,
                region: *default_region,
            }
        }
    };
    let parsed = INPUT.with_borrow_mut(|input| {
        input.clear();
        let international = match clean(trimmed, input) {
            Some(Form::International) => true,
            Some(Form::National) => false,
            // Letters, `tel:` URIs, extensions, Unicode digits…: the crate's full parser.
            None => {
                input.clear();
                match trimmed.strip_prefix("00") {
                    Some(rest) => {
                        input.push('+');
                        input.push_str(rest);
                    }
                    None => input.push_str(trimmed),
                }
                input.starts_with(PLUS_SIGNS)
            }
        };
        // The crate's rules, replayed with this thread's own regexes.
        let fast = if international {
            fast::international(database, input.as_str())
        } else {
            fast::national(database, default_region.code(), input.as_str())
        };
        if let Some(result) = fast {
            return Parsed::Done(result.map_err(|()| invalid(international)));
        }
        // An international form is read with its own country's rules: given a default region,
        // the crate would strip that region's national prefix (US `1`) from foreign numbers.
        let region = (!international).then_some(default_region.0);
        match phonenumber::parse_with(database, region, input.as_str()) {
            Ok(number) => Parsed::Number(number, international),
            Err(_) => Parsed::Done(Err(invalid(international))),
        }
    });
    let (number, international) = match parsed {
        Parsed::Number(number, international) => (number, international),
        Parsed::Done(result) => return result,
    };
    if number.extension().is_some() {
        return Err(PhoneError::Extension(shorten(trimmed)));
    }
    // The crate reads every letter as a keypad digit; libphonenumber only in a vanity number.
    if typo() {
        return Err(PhoneError::Letters(shorten(trimmed)));
    }
    if !phonenumber::is_valid_with(database, &number) {
        return Err(invalid(international));
    }
    let mut e164 = String::with_capacity(16);
    write!(e164, "+{}{}", number.code().value(), number.national())
        .expect("writing to a String cannot fail");
    Ok(e164)
}

/// The fewest letters libphonenumber reads as keypad digits (`VALID_ALPHA_PHONE_PATTERN`,
/// `(?:.*?[A-Za-z]){3}.*`, checked in `PhoneNumberUtil.normalize`): `1-800-FLOWERS` is a vanity
/// number, while in `(212) 555-O1O1` the letters are dropped, not converted, which leaves too
/// few digits. The `phonenumber` crate 0.3 defines the pattern but never checks it (it converts
/// every letter), so [`normalize`] applies it. Where dropping the letters would leave a valid
/// number (`+49 30 1234 O567`), that number is not the one written either: 1 or 2 letters are
/// always rejected.
const VANITY_MIN_LETTERS: usize = 3;

/// The ASCII letters libphonenumber counts for [`VANITY_MIN_LETTERS`]: those of the number
/// itself, from its first digit or plus sign (`extractPossibleNumber` drops what comes before,
/// such as `tel:`) up to any `;` (RFC 3966 parameters). An extension is rejected before this
/// is asked.
fn letters_in_number(raw: &str) -> usize {
    let start = raw
        .find(|c: char| c.is_numeric() || PLUS_SIGNS.contains(&c))
        .unwrap_or(raw.len());
    let number = &raw[start..];
    let number = number.split(';').next().unwrap_or(number);
    number.bytes().filter(u8::is_ascii_alphabetic).count()
}

/// What [`normalize`] made of its input before validation.
enum Parsed {
    /// Parsed by the crate; `true` when written internationally.
    Number(phonenumber::PhoneNumber, bool),
    /// Settled: by the fast path, or rejected by the crate's parser.
    Done(Result<String, PhoneError>),
}

/// The plus signs libphonenumber accepts: ASCII and full-width.
const PLUS_SIGNS: [char; 2] = ['+', '\u{ff0b}'];

/// How a cleaned number was written.
enum Form {
    /// With `+` or `00`; `input` holds `+CC-NATIONAL`, the RFC 3966 global form, which the
    /// crate reads without its free-text extraction regexes.
    International,
    /// Without a country code; `input` holds the digits.
    National,
}

/// Copies the digits of `raw` into `input`, skipping spaces, dashes, dots and parentheses.
/// `None` when `raw` holds anything else (left to the crate's full parser) or starts with an
/// unknown country code (left to the crate to reject).
fn clean(raw: &str, input: &mut String) -> Option<Form> {
    let mut plus = false;
    for (i, b) in raw.bytes().enumerate() {
        match b {
            b'0'..=b'9' => input.push(char::from(b)),
            b'+' if i == 0 => plus = true,
            b' ' | b'-' | b'.' | b'(' | b')' | b'\t' => {}
            _ => return None,
        }
    }
    let skip = if plus {
        0
    } else if input.starts_with("00") {
        2
    } else {
        return Some(Form::National);
    };
    input.replace_range(..skip, "+");
    let digits = &input[1..];
    // Country codes are prefix-free, so at most one of the first three prefixes is one.
    let code_len = (1..=3.min(digits.len())).find(|&len| {
        !digits.starts_with('0') && digits[..len].parse().is_ok_and(is_country_code)
    })?;
    input.insert(1 + code_len, '-');
    Some(Form::International)
}

/// `raw` for an error message, cut to a readable length.
fn shorten(raw: &str) -> String {
    const MAX_CHARS: usize = 40;
    match raw.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &raw[..end]),
        None => raw.to_owned(),
    }
}

thread_local! {
    /// The cleaned input of [`normalize`], reused across calls on a thread.
    static INPUT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The crate's metadata, with its regex cache made large enough to hold every pattern used.
///
/// `phonenumber` 0.3 compiles metadata regexes on first use into one LRU cache of 100 entries
/// shared by all regions. A mix of a few countries already needs more than that, and a thrashing
/// cache recompiles regexes on nearly every number (measured: 9x slower). Parsing and validating
/// uses about 1,250 distinct regexes for all regions together (about 145 MB once every region
/// has been seen; a handful of countries need about 100 regexes), so this capacity means a
/// pattern is compiled once per process.
fn database() -> &'static phonenumber::metadata::Database {
    static TUNED: Once = Once::new();
    let database = &*phonenumber::metadata::DATABASE;
    TUNED.call_once(|| {
        let cache = database.cache();
        // A poisoned lock only means a panic elsewhere; the cache itself is still usable.
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.set_capacity(REGEX_CACHE_CAPACITY);
    });
    database
}

const REGEX_CACHE_CAPACITY: usize = 2_048;

/// Whether `code` is a country calling code libphonenumber knows.
fn is_country_code(code: u16) -> bool {
    static CODES: LazyLock<[bool; 1000]> = LazyLock::new(|| {
        let mut codes = [false; 1000];
        for (code, known) in (0u16..).zip(codes.iter_mut()) {
            *known = phonenumber::metadata::DATABASE.region(&code).is_some();
        }
        codes
    });
    CODES.get(usize::from(code)).copied().unwrap_or(false)
}

/// `phonenumber::parse` + `is_valid` for the `+CC-NATIONAL` form, step by step as the crate
/// 0.3 does them (`parser::parse_with`, `helper::national_number`, `validator::source_for`,
/// `number_type`), but matching the metadata patterns with this thread's own compiled regexes
/// instead of the crate's cache behind one global mutex: threads then run in parallel, and no
/// pattern text is hashed per match. Anything unusual returns `None`: the crate decides.
/// `tests::fast_path_equals_the_crate_on_random_numbers` holds the two to the same answers.
mod fast {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use phonenumber::metadata::{Database, Descriptor, Metadata};
    use regex::Regex;

    thread_local! {
        /// Metadata patterns compiled on this thread, keyed by the address of the crate's
        /// cached regex (the metadata is a `static`, so addresses are stable).
        static REGEXES: RefCell<HashMap<(usize, bool), Rc<Regex>>> = RefCell::new(HashMap::new());
    }

    /// Runs `f` with `cached`'s pattern compiled as the crate compiles it (`ignore_whitespace`),
    /// or, when `anchored`, as `^(?:pattern)`; `None` when it does not compile (the crate would
    /// panic: let it).
    fn with_regex<T, R>(
        cached: &T,
        source: &str,
        anchored: bool,
        f: impl FnOnce(&Regex) -> R,
    ) -> Option<R> {
        let key = (std::ptr::from_ref(cached) as usize, anchored);
        let re = REGEXES.with_borrow_mut(|regexes| {
            if let Some(re) = regexes.get(&key) {
                return Some(Rc::clone(re));
            }
            let pattern = if anchored {
                // The newline ends a `#` comment, which `ignore_whitespace` allows.
                std::borrow::Cow::Owned(format!("^(?:{source}\n)"))
            } else {
                std::borrow::Cow::Borrowed(source)
            };
            let re = regex::RegexBuilder::new(&pattern)
                .ignore_whitespace(true)
                .build()
                .ok()?;
            Some(Rc::clone(regexes.entry(key).or_insert(Rc::new(re))))
        })?;
        Some(f(&re))
    }

    /// Whether `Regex::find(value)` starts at 0 (the crate's way of anchoring). A match that
    /// starts at 0 exists exactly when the leftmost match starts there, so an anchored
    /// `is_match` answers the same without scanning the rest of `value`.
    fn matches_at_start<T>(cached: &T, source: &str, value: &str) -> Option<bool> {
        with_regex(cached, source, true, |re| re.is_match(value))
    }

    /// `Descriptor::is_match`.
    fn is_match(desc: &Descriptor, value: &str) -> Option<bool> {
        let lengths = desc.possible_length();
        if !lengths.is_empty() && !lengths.iter().any(|&l| usize::from(l) == value.len()) {
            return Some(false);
        }
        let re = desc.national_number();
        matches_at_start(re, re.as_str(), value)
    }

    /// `validator::number_type(meta, value) != Type::Unknown`.
    fn has_type(meta: &Metadata, value: &str) -> Option<bool> {
        let d = meta.descriptors();
        if !is_match(d.general(), value)? {
            return Some(false);
        }
        let kinds = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ];
        for desc in kinds.into_iter().flatten() {
            if is_match(desc, value)? {
                return Some(true);
            }
        }
        Some(false)
    }

    /// `validator::source_for` resolved to its metadata: `Some(None)` when it finds none.
    fn source_for<'d>(db: &'d Database, code: u16, national: &str) -> Option<Option<&'d Metadata>> {
        let Some(regions) = db.region(&code) else {
            return Some(None);
        };
        if regions.len() == 1 {
            if regions[0] == "001" {
                return Some(db.by_code(&code).and_then(|m| m.into_iter().next()));
            }
            if regions[0].parse::<phonenumber::country::Id>().is_err() {
                return Some(None);
            }
            return Some(db.by_id(regions[0]));
        }
        for region in regions {
            let meta = db.by_id(region)?;
            let found = match meta.leading_digits() {
                Some(re) => matches_at_start(re, re.as_str(), national)?,
                None => has_type(meta, national)?,
            };
            if found {
                region.parse::<phonenumber::country::Id>().ok()?;
                return Some(Some(meta));
            }
        }
        Some(None)
    }

    /// `helper::national_number`: strips the national prefix and carrier code.
    fn national_number(meta: &Metadata, mut national: String) -> Option<String> {
        let Some(parsing) = meta.national_prefix_for_parsing() else {
            if let Some(prefix) = meta.national_prefix()
                && national.starts_with(prefix)
            {
                national.drain(..prefix.len());
            }
            return Some(national);
        };
        let general = meta.descriptors().general();
        with_regex(parsing, parsing.as_str(), false, |re| {
            let Some(found) = re.find(&national) else {
                return Some(national.clone());
            };
            if found.start() != 0 {
                return Some(national.clone());
            }
            let end = found.end();
            let viable = is_match(general, &national)?;
            let captures = re.captures(&national)?;
            let first = captures.get(1).is_some();
            let last = captures.get(captures.len() - 1).is_some();
            match meta.national_prefix_transform_rule() {
                Some(transform) if last => {
                    let transformed = re.replace(&national, transform).into_owned();
                    if viable && !is_match(general, &transformed)? {
                        return Some(national.clone());
                    }
                    // The crate unwraps the first group here.
                    first.then_some(transformed)
                }
                _ => {
                    if viable && !is_match(general, &national)? {
                        return Some(national.clone());
                    }
                    Some(national[end..].to_owned())
                }
            }
        })?
    }

    /// `validator::length(meta, number, Type::Unknown) == Validation::TooShort`.
    fn too_short(meta: &Metadata, len: usize) -> bool {
        let general = meta.descriptors().general();
        let local = general.possible_local_length().iter();
        match general.possible_length().first() {
            None => false,
            Some(&min) => !local.clone().any(|&l| usize::from(l) == len) && len < usize::from(min),
        }
    }

    /// `validator::length(meta, number, Type::Unknown).is_possible()`.
    fn is_possible_length(meta: &Metadata, len: usize) -> bool {
        let general = meta.descriptors().general();
        let possible = general.possible_length();
        let (Some(&min), Some(&max)) = (possible.first(), possible.last()) else {
            return false;
        };
        let has = |lengths: &[u16]| lengths.iter().any(|&l| usize::from(l) == len);
        if has(general.possible_local_length()) || len == usize::from(min) {
            return true;
        }
        len > usize::from(min) && len <= usize::from(max) && has(possible)
    }

    /// The E.164 form of `+CC-NATIONAL` (`Err(())` when the crate rejects it); `None` when the
    /// input is not plainly that form.
    pub(super) fn international(db: &Database, input: &str) -> Option<Result<String, ()>> {
        let (code, national) = input.strip_prefix('+')?.split_once('-')?;
        if !(3..=17).contains(&national.len()) || !national.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let code: u16 = code.parse().ok()?;
        db.by_code(&code)?;
        // parser::parse_with, without a default region
        let meta = source_for(db, code, national.trim_start_matches('0'))?;
        finish(db, code, meta, national.to_owned())
    }

    /// The E.164 form of national `digits` read in `region`, as the crate parses them with a
    /// default region (`helper::country_code`); `None` when unusual.
    pub(super) fn national(
        db: &Database,
        region: &str,
        digits: &str,
    ) -> Option<Result<String, ()>> {
        if !(3..=17).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let meta = db.by_id(region)?;
        let mut national = digits.to_owned();
        // helper::international_prefix: an IDD (US `011`) makes the country code explicit.
        let mut idd = false;
        if let Some(re) = meta.international_prefix() {
            let found = with_regex(re, re.as_str(), false, |re| {
                re.find(&national).map(|m| (m.start(), m.end()))
            })?;
            if let Some((0, end)) = found
                && !national[end..].starts_with('0')
            {
                idd = true;
                national.drain(..end);
            }
        }
        let code = if idd {
            if national.len() <= 2 || national.starts_with('0') {
                return Some(Err(()));
            }
            let len = (1..=3).find(|&len| {
                national
                    .get(..len)
                    .and_then(|c| c.parse::<u16>().ok())
                    .is_some_and(|c| db.by_code(&c).is_some())
            });
            let Some(len) = len else {
                return Some(Err(()));
            };
            let code = national[..len].parse().ok()?;
            national.drain(..len);
            code
        } else {
            let code = meta.country_code();
            let prefix = code.to_string();
            if national.starts_with(&prefix)
                && (!is_match(meta.descriptors().general(), &national)?
                    || !is_possible_length(meta, national.len()))
            {
                national.drain(..prefix.len());
            }
            code
        };
        finish(db, code, Some(meta), national)
    }

    /// The rest of `parser::parse_with` (national prefix, carrier code, lengths) and then
    /// `validator::is_valid_with`, for a number whose country code is known.
    fn finish(
        db: &Database,
        code: u16,
        meta: Option<&Metadata>,
        mut national: String,
    ) -> Option<Result<String, ()>> {
        if let Some(meta) = meta {
            let mut potential = national_number(meta, national.clone())?;
            if let Some(prefix) = meta.national_prefix()
                && potential.starts_with(prefix)
            {
                potential.drain(..prefix.len());
            }
            if !too_short(meta, potential.len()) {
                national = potential;
            }
        }
        if !(2..=17).contains(&national.len()) {
            return Some(Err(()));
        }
        if !national.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let Ok(number) = national.parse::<phonenumber::NationalNumber>() else {
            return Some(Err(()));
        };
        // validator::is_valid_with
        let national = number.to_string();
        let valid = match source_for(db, code, &national)? {
            Some(meta) => has_type(meta, &national)?,
            None => false,
        };
        Some(if valid {
            Ok(format!("+{code}{national}"))
        } else {
            Err(())
        })
    }
}

/// The time zones of an E.164 number's longest known prefix; empty when no prefix is known.
/// Non-digits after the leading `+` end the prefix.
pub fn zones_for(e164: &str) -> &'static [&'static str] {
    let digits = e164.strip_prefix('+').unwrap_or(e164).as_bytes();
    let mut prefixes = [0u32; phone_zones::MAX_PREFIX_DIGITS];
    let mut len = 0;
    let mut value = 0u32;
    for &b in digits.iter().take(phone_zones::MAX_PREFIX_DIGITS) {
        if !b.is_ascii_digit() {
            break;
        }
        value = value * 10 + u32::from(b - b'0');
        prefixes[len] = value;
        len += 1;
    }
    prefixes[..len]
        .iter()
        .rev()
        .find_map(|prefix| {
            phone_zones::PREFIXES
                .binary_search_by_key(prefix, |&(p, _)| p)
                .ok()
        })
        .map_or(&[], |i| {
            phone_zones::ZONE_LISTS[usize::from(phone_zones::PREFIXES[i].1)]
        })
}

/// The zones a contact is called in, from its number: [`zones_for`], except that a match on the
/// country calling code alone that spans several zones counts as unknown (empty), so the
/// campaign's zone applies. Such lists (all 42 NANPA zones for `+1` toll-free numbers, from
/// Pago Pago to Guam) can never hold one calling window together.
pub fn contact_zones(e164: &str) -> &'static [&'static str] {
    let zones = zones_for(e164);
    if zones.len() > 1 {
        let digits = e164.strip_prefix('+').unwrap_or(e164);
        let country_wide = (1..=3)
            .filter_map(|n| digits.get(..n))
            .any(|cc| std::ptr::eq(zones_for(cc), zones));
        if country_wide {
            return &[];
        }
    }
    zones
}

/// [`zones_for`], parsed; every name in the table is a valid `chrono_tz::Tz` (tested).
pub fn zones_for_tz(e164: &str) -> Vec<chrono_tz::Tz> {
    zones_for(e164)
        .iter()
        .filter_map(|name| name.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_wide_zone_lists_count_as_unknown() {
        assert!(zones_for("+18005550107").len() > 10);
        assert!(contact_zones("+18005550107").is_empty());
        assert_eq!(contact_zones("+12125550101"), &["America/New_York"]);
    }

    fn us() -> Region {
        Region::parse("US").expect("US is a region")
    }

    fn es() -> Region {
        Region::parse("ES").expect("ES is a region")
    }

    #[test]
    fn region_parse() {
        assert_eq!(Region::parse("us"), Some(us()));
        assert_eq!(Region::parse(" ES "), Some(es()));
        assert_eq!(us().to_string(), "US");
        assert_eq!(Region::parse("XX"), None);
        assert_eq!(Region::parse(""), None);
        assert_eq!(Region::parse("USA"), None);
    }

    #[test]
    fn normalizes_us_national_forms() {
        for raw in [
            "(415) 555-0132",
            "415-555-0132",
            "415.555.0132",
            "415 555 0132",
            "4155550132",
            "1 415 555 0132",
            "1-415-555-0132",
            " (415)555-0132 ",
        ] {
            assert_eq!(
                normalize(raw, &us()),
                Ok("+14155550132".to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn normalizes_international_forms() {
        let cases = [
            ("+1 (415) 555-0100", "+14155550100"),
            ("+1.415.555.0100", "+14155550100"),
            ("0034 600 123 456", "+34600123456"),
            ("0034-600-123-456", "+34600123456"),
            ("+34 600 12 34 56", "+34600123456"),
            ("+44 20 7946 0958", "+442079460958"),
            ("0044 (0)20 7946 0958", "+442079460958"),
            ("+39 06 6982 1234", "+390669821234"),
            ("+86 138 0013 8000", "+8613800138000"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw, &us()), Ok(want.to_owned()), "{raw}");
        }
    }

    #[test]
    fn normalizes_spanish_national_forms_with_region_es() {
        assert_eq!(normalize("600 123 456", &es()), Ok("+34600123456".into()));
        assert_eq!(normalize("91-123-45-67", &es()), Ok("+34911234567".into()));
        // The same digits are not a valid US number.
        assert!(normalize("600 123 456", &us()).is_err());
    }

    #[test]
    fn rejects_invalid_numbers() {
        assert_eq!(
            normalize("+1 555", &us()),
            Err(PhoneError::Invalid("+1 555".into()))
        );
        assert_eq!(
            normalize("555-0100", &us()),
            Err(PhoneError::InvalidNational {
                number: "555-0100".into(),
                region: us()
            })
        );
        for raw in [
            "+1 (011) 555-0100",
            "+999 1234 5678",
            "hello",
            "+",
            "00",
            "0034 123",
            "+34 600 123 456 789 012",
            "12345678901234567890123",
        ] {
            assert!(normalize(raw, &us()).is_err(), "{raw} accepted");
        }
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(normalize("", &us()), Err(PhoneError::Empty));
        assert_eq!(normalize("   \t", &us()), Err(PhoneError::Empty));
    }

    #[test]
    fn rejects_extensions() {
        assert_eq!(
            normalize("415-555-0132 ext. 12", &us()),
            Err(PhoneError::Extension("415-555-0132 ext. 12".into()))
        );
        // `x` is a letter, but here it marks an extension, which is the reason given.
        assert_eq!(
            normalize("415-555-0132 x12", &us()),
            Err(PhoneError::Extension("415-555-0132 x12".into()))
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            PhoneError::Invalid("+1 555".into()).to_string(),
            "`+1 555` is not a valid phone number: write it in international form like +14155550100"
        );
        assert_eq!(
            PhoneError::InvalidNational {
                number: "555-0100".into(),
                region: us()
            }
            .to_string(),
            "`555-0100` is not a valid phone number in region `US` (`dialer.default_region`): \
             write it in international form like +14155550100"
        );
        assert_eq!(
            PhoneError::Letters("(212) 555-O1O1".into()).to_string(),
            "`(212) 555-O1O1` is not a valid phone number: it has a letter among its digits \
             (O for 0? l for 1?); write it with digits only (letters are read as keypad digits \
             only in vanity numbers with 3 or more, like 1-800-FLOWERS)"
        );
        assert_eq!(
            PhoneError::Empty.to_string(),
            "phone number is empty: write it in international form like +14155550100"
        );
    }

    #[test]
    fn zones_of_a_new_york_number() {
        assert_eq!(zones_for("+12125550100"), ["America/New_York"]);
        assert_eq!(zones_for_tz("+12125550100"), [chrono_tz::America::New_York]);
    }

    #[test]
    fn zones_of_a_prefix_spanning_two_zones() {
        // Part of Idaho's 208 area code: the north is Pacific time, the south Mountain time.
        assert_eq!(
            zones_for("+12083205550"),
            ["America/Boise", "America/Los_Angeles"]
        );
        assert_eq!(zones_for("+12087891234"), ["America/Denver"]);
        assert_eq!(
            zones_for("+61851012345"),
            ["Australia/Adelaide", "Australia/Perth"]
        );
        assert_eq!(
            zones_for("+522001234567"),
            ["America/Mexico_City", "America/Tijuana"]
        );
    }

    #[test]
    fn zones_of_a_toll_free_number_are_the_country_level_zones() {
        let zones = zones_for("+18005550100");
        assert!(zones.len() > 10, "{zones:?}");
        for zone in [
            "America/New_York",
            "America/Los_Angeles",
            "Pacific/Honolulu",
        ] {
            assert!(zones.contains(&zone), "{zone} missing from {zones:?}");
        }
    }

    #[test]
    fn zones_of_spanish_numbers() {
        // The table maps prefix 346 (mobiles) to Madrid. libphonenumber's own mapper would give
        // a mobile the country-level zones (Canary and Madrid); this lookup is by prefix only.
        assert_eq!(zones_for("+34600123456"), ["Europe/Madrid"]);
        assert_eq!(zones_for("+34928123456"), ["Atlantic/Canary"]);
        // A Spanish number whose prefix is not in the table gets the country-level zones.
        assert_eq!(
            zones_for("+34111111111"),
            ["Atlantic/Canary", "Europe/Madrid"]
        );
    }

    #[test]
    fn zones_of_unknown_prefixes_are_empty() {
        assert!(zones_for("+80012345678").is_empty());
        assert!(zones_for("").is_empty());
        assert!(zones_for("+").is_empty());
        assert!(zones_for("garbage").is_empty());
        assert!(zones_for_tz("+80012345678").is_empty());
    }

    #[test]
    fn every_zone_in_the_table_is_a_chrono_tz_zone() {
        for zones in phone_zones::ZONE_LISTS {
            assert!(!zones.is_empty());
            for name in zones {
                assert!(
                    name.parse::<chrono_tz::Tz>().is_ok(),
                    "`{name}` is not a chrono-tz zone: regenerate with tools/gen-phone-zones.py"
                );
                assert_ne!(*name, "Etc/Unknown");
            }
        }
    }

    #[test]
    fn table_is_sorted_and_indices_are_in_range() {
        let prefixes = &phone_zones::PREFIXES;
        assert!(prefixes.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            prefixes
                .iter()
                .all(|&(p, i)| p > 0 && usize::from(i) < phone_zones::ZONE_LISTS.len())
        );
        assert!(
            prefixes
                .iter()
                .all(|&(p, _)| p.to_string().len() <= phone_zones::MAX_PREFIX_DIGITS)
        );
    }

    /// `normalize` without the pre-cleaning or the cache tuning: the crate's parser on the raw
    /// text (a leading `00` turned into `+`). The fast path must agree with it.
    fn reference_normalize(raw: &str, region: &Region) -> Option<String> {
        let raw = raw.trim();
        let input = match raw.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => raw.to_owned(),
        };
        let region = (!input.starts_with(PLUS_SIGNS)).then_some(region.0);
        let number = phonenumber::parse(region, &input).ok()?;
        (number.extension().is_none() && phonenumber::is_valid(&number))
            .then(|| number.format().mode(phonenumber::Mode::E164).to_string())
    }

    #[test]
    fn fast_path_agrees_with_the_crates_parser() {
        let region = us();
        let numbers = sample_numbers(3_000);
        let mut valid = 0;
        for raw in &numbers {
            let fast = normalize(raw, &region).ok();
            assert_eq!(fast, reference_normalize(raw, &region), "{raw}");
            valid += usize::from(fast.is_some());
        }
        // The sample is mostly valid; a bug that rejects everything must not pass.
        assert!(valid > numbers.len() / 2, "{valid} valid");
    }

    /// libphonenumber's example number of every type in every region, written internationally
    /// and nationally (in its own region).
    fn metadata_examples() -> Vec<(String, Region)> {
        let db = &*phonenumber::metadata::DATABASE;
        let mut examples = Vec::new();
        for code in 1u16..1000 {
            for id in db.region(&code).into_iter().flatten() {
                let Some(meta) = db.by_id(id) else { continue };
                let Some(region) = Region::parse(id) else {
                    continue;
                };
                let d = meta.descriptors();
                let descriptors = [
                    d.fixed_line(),
                    d.mobile(),
                    d.toll_free(),
                    d.premium_rate(),
                    d.shared_cost(),
                    d.voip(),
                    d.personal_number(),
                    d.uan(),
                ];
                for example in descriptors
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d.example())
                {
                    examples.push((format!("+{code} {example}"), region));
                    examples.push((format!("00{code}-{example}"), region));
                    let national = meta.national_prefix().unwrap_or("");
                    examples.push((format!("{national}{example}"), region));
                }
            }
        }
        examples
    }

    #[test]
    fn fast_path_agrees_with_the_crates_parser_on_every_regions_examples() {
        let examples = metadata_examples();
        assert!(examples.len() > 2_000, "{} examples", examples.len());
        let mut valid = 0;
        for (raw, region) in &examples {
            let fast = normalize(raw, region).ok();
            assert_eq!(fast, reference_normalize(raw, region), "{raw} in {region}");
            valid += usize::from(fast.is_some());
        }
        assert!(
            valid > examples.len() * 9 / 10,
            "{valid} of {} valid",
            examples.len()
        );
    }

    #[test]
    fn other_forms_go_through_the_crates_full_parser() {
        let cases = [
            ("tel:+1-415-555-0132", "+14155550132"),
            ("+1\u{a0}415\u{a0}555\u{a0}0132", "+14155550132"),
            ("\u{ff0b}1 415 555 0132", "+14155550132"),
            ("1-800-FLOWERS", "+18003569377"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw, &us()), Ok(want.to_owned()), "{raw}");
        }
    }

    /// Issue: a letter typed for a digit was read as a keypad digit, so `(212) 555-O1O1` became
    /// +12125556161, a different person (on the do-not-call list too). libphonenumber reads
    /// letters only in a number with 3 or more of them (`VALID_ALPHA_PHONE_PATTERN`).
    #[test]
    fn a_letter_typed_for_a_digit_is_rejected_not_read_as_another_number() {
        let cases = [
            ("(212) 555-O1O1", us()),
            ("+1 212 555 0l99", us()),
            ("212-555-01O1", us()),
            ("+1 (415) 555-OI32", us()),
            ("+44 20 7946 O958", us()),
            ("0034 6l2 345 678", us()),
            ("6l2 345 678", es()),
            ("(212) 555-0101 O", us()),
            // Dropping the letter, as libphonenumber does, would leave a valid number that is
            // not the one written.
            ("+49 30 1234 O567", us()),
        ];
        for (raw, region) in cases {
            assert_eq!(
                normalize(raw, &region),
                Err(PhoneError::Letters(raw.into())),
                "{raw} in {region}"
            );
        }
    }

    #[test]
    fn vanity_numbers_with_three_or_more_letters_are_read_as_keypad_digits() {
        let cases = [
            ("1-800-FLOWERS", "+18003569377"),
            ("1 (800) flowers", "+18003569377"),
            ("+1 800 FLOWERS", "+18003569377"),
            ("tel:+1-800-FLOWERS", "+18003569377"),
            ("+1-800-GOT-JUNK", "+18004685865"),
            ("1-800-356-9JKL", "+18003569555"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw, &us()), Ok(want.to_owned()), "{raw}");
        }
    }

    /// Letters always take the crate's parser; the same number in digits takes the fast path.
    #[test]
    fn vanity_letters_on_the_crate_path_agree_with_digits_on_the_fast_path() {
        let cases = [
            ("1-800-FLOWERS", "18003569377"),
            ("+1-800-GOT-JUNK", "+1-8004685865"),
            ("+44 20 7946 JKL8", "+44-2079465558"),
            ("0034 600 ADG 456", "+34-600234456"),
        ];
        for (vanity, digits) in cases {
            let fast = if digits.starts_with('+') {
                fast::international(database(), digits)
            } else {
                fast::national(database(), "US", digits)
            };
            let fast = fast.unwrap_or_else(|| panic!("{digits} left the fast path"));
            assert!(fast.is_ok(), "{digits} is invalid");
            assert_eq!(normalize(vanity, &us()).ok(), fast.ok(), "{vanity}");
        }
    }

    /// Random valid numbers with some digits written as letters: 1 or 2 look-alike letters are
    /// always rejected; 3 or more keypad letters give the number of the digits they stand for.
    #[test]
    fn letters_among_digits_on_random_numbers() {
        // Keypad letters that cannot spell an extension marker (`x`, `ext`, `int`, `anexo`).
        const KEYPAD: [&[u8]; 10] = [
            b"", b"", b"ABC", b"DF", b"GH", b"JKL", b"MO", b"PQRS", b"UV", b"WYZ",
        ];
        const LOOK_ALIKE: [&[u8]; 10] =
            [b"Oo", b"lI", b"Z", b"E", b"A", b"S", b"G", b"T", b"B", b"g"];
        let mut state = 0x51f1_5eed_dead_beef_u64;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % bound as u64).expect("below a usize bound")
        };
        let (mut typos, mut vanity) = (0, 0);
        for raw in sample_numbers(3_000) {
            let Ok(want) = normalize(&raw, &us()) else {
                continue;
            };
            // Past the country code and the 3 digits libphonenumber wants before any letter.
            let digits: Vec<usize> = raw
                .bytes()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_digit())
                .map(|(i, _)| i)
                .skip(5)
                .collect();
            let mut typo = raw.clone().into_bytes();
            for _ in 0..1 + next(2) {
                let i = digits[next(digits.len())];
                let look_alike = LOOK_ALIKE[usize::from(raw.as_bytes()[i] - b'0')];
                typo[i] = look_alike[next(look_alike.len())];
            }
            let typo = String::from_utf8(typo).expect("ascii");
            assert!(normalize(&typo, &us()).is_err(), "{typo} accepted");
            typos += 1;

            let keyed: Vec<usize> = digits
                .iter()
                .copied()
                .filter(|&i| raw.as_bytes()[i] >= b'2')
                .collect();
            if keyed.len() < 3 {
                continue;
            }
            let mut letters = raw.clone().into_bytes();
            let chosen: Vec<usize> = keyed
                .iter()
                .enumerate()
                .filter(|&(n, _)| n < 3 || next(2) == 0)
                .map(|(_, &i)| i)
                .collect();
            for i in chosen {
                let keys = KEYPAD[usize::from(raw.as_bytes()[i] - b'0')];
                letters[i] = keys[next(keys.len())];
            }
            let letters = String::from_utf8(letters).expect("ascii");
            assert_eq!(normalize(&letters, &us()).as_ref(), Ok(&want), "{letters}");
            vanity += 1;
        }
        assert!(
            typos > 2_000 && vanity > 2_000,
            "{typos} typos, {vanity} vanity"
        );
    }

    #[test]
    fn long_input_is_shortened_in_the_error() {
        let raw = "1".repeat(500);
        let Err(PhoneError::InvalidNational { number, .. }) = normalize(&raw, &us()) else {
            panic!("500 digits accepted");
        };
        assert_eq!(number.chars().count(), 41);
    }

    /// The crate's own answer for `+CC-NATIONAL`: `parse` + `is_valid` + E.164.
    fn crate_e164(input: &str) -> Option<String> {
        let number = phonenumber::parse(None, input).ok()?;
        (number.extension().is_none() && phonenumber::is_valid(&number))
            .then(|| number.format().mode(phonenumber::Mode::E164).to_string())
    }

    #[test]
    fn fast_path_equals_the_crate_on_random_numbers() {
        let db = &*phonenumber::metadata::DATABASE;
        // Every country calling code with the example numbers of its regions.
        let mut codes: Vec<(u16, Vec<String>)> = Vec::new();
        for code in 1u16..1000 {
            let Some(metas) = db.by_code(&code) else {
                continue;
            };
            let mut examples = Vec::new();
            for meta in metas {
                let d = meta.descriptors();
                let all = [
                    Some(d.general()),
                    d.fixed_line(),
                    d.mobile(),
                    d.toll_free(),
                    d.premium_rate(),
                    d.shared_cost(),
                    d.voip(),
                    d.personal_number(),
                    d.pager(),
                    d.uan(),
                    d.voicemail(),
                ];
                examples.extend(
                    all.into_iter()
                        .flatten()
                        .filter_map(|d| d.example())
                        .map(str::to_owned),
                );
                if let Some(prefix) = meta.national_prefix() {
                    examples.push(prefix.to_owned());
                }
            }
            codes.push((code, examples));
        }
        assert!(codes.len() > 200, "{} country codes", codes.len());
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % bound as u64).expect("below a usize bound")
        };
        let (mut valid, mut fast, mut total) = (0, 0, 0);
        let (mut valid_national, mut fast_national, mut total_national) = (0, 0, 0);
        for _ in 0..50_000 {
            let (code, examples) = &codes[next(codes.len())];
            let mut national: Vec<u8> = match (examples.is_empty(), next(4)) {
                (false, 0..=2) => examples[next(examples.len())].clone().into_bytes(),
                _ => (0..3 + next(13)).map(|_| b'0' + next(10) as u8).collect(),
            };
            // Mutate: change digits, drop or add some, put a trunk prefix in front.
            for _ in 0..next(3) {
                let i = next(national.len().max(1));
                if let Some(d) = national.get_mut(i) {
                    *d = b'0' + next(10) as u8;
                }
            }
            match next(8) {
                0 if national.len() > 1 => {
                    national.pop();
                }
                1 => national.push(b'0' + next(10) as u8),
                2 => national.insert(0, b'0'),
                3 => {
                    let d = b'0' + next(10) as u8;
                    national.insert(0, d);
                }
                _ => {}
            }
            let national = String::from_utf8(national).expect("ascii digits");
            let input = format!("+{code}-{national}");
            let want = crate_e164(&input);
            if let Some(got) = fast::international(db, &input) {
                assert_eq!(got.ok(), want, "{input}");
                fast += 1;
            }
            // Written nationally in each region of the code.
            for id in db.region(code).into_iter().flatten() {
                let Some(region) = Region::parse(id) else {
                    continue;
                };
                if let Some(got) = fast::national(db, region.code(), &national) {
                    let number = phonenumber::parse(Some(region.0), &national).ok();
                    let want = number
                        .filter(phonenumber::is_valid)
                        .map(|number| number.format().mode(phonenumber::Mode::E164).to_string());
                    assert_eq!(got.ok(), want, "{national} in {region}, fast path");
                    fast_national += 1;
                }
                let want = reference_normalize(&national, &region);
                assert_eq!(
                    normalize(&national, &region).ok(),
                    want,
                    "{national} in {region}"
                );
                valid_national += usize::from(want.is_some());
                total_national += 1;
            }
            // And through `normalize`, written with spaces.
            let raw = format!("+{code} {national}");
            assert_eq!(normalize(&raw, &us()).ok(), want, "{raw}");
            valid += usize::from(want.is_some());
            total += 1;
        }
        // Both valid and invalid numbers, nearly all of them settled by the fast path.
        assert!(
            valid > total / 5 && valid < total * 4 / 5,
            "{valid} of {total} valid"
        );
        assert!(fast > total * 9 / 10, "{fast} of {total} on the fast path");
        assert!(
            valid_national > total_national / 10 && valid_national < total_national * 9 / 10,
            "{valid_national} of {total_national} national forms valid"
        );
        assert!(
            fast_national > total_national * 9 / 10,
            "{fast_national} of {total_national} national forms on the fast path"
        );
    }

    /// A deterministic mix of the forms a contacts file holds, about 10% invalid.
    fn sample_numbers(n: usize) -> Vec<String> {
        const US_AREAS: [u32; 16] = [
            212, 415, 312, 617, 713, 305, 206, 303, 404, 602, 808, 907, 208, 416, 604, 787,
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |bound: u32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            u32::try_from(state % u64::from(bound)).expect("below a u32 bound")
        };
        (0..n)
            .map(|_| {
                let area = US_AREAS[next(16) as usize];
                let exchange = 200 + next(800);
                let line = next(10_000);
                let mobile = next(1_000_000);
                match next(20) {
                    0..=2 => format!("({area}) {exchange}-{line:04}"),
                    3..=4 => format!("{area}-{exchange}-{line:04}"),
                    5 => format!("{area}.{exchange}.{line:04}"),
                    6..=7 => format!("+1 {area} {exchange} {line:04}"),
                    8 => format!("1{area}{exchange}{line:04}"),
                    9 => format!("+1{area}{exchange}{line:04}"),
                    10 => format!("0034 6{:02} {:03} {:03}", next(100), next(1000), next(1000)),
                    11 => format!("+34 91 {:03} {:02} {:02}", next(1000), next(100), next(100)),
                    12 => format!("+44 7700 9{mobile:05}"),
                    13 => format!("+52 55 {:04} {line:04}", 1000 + next(9000)),
                    14 => format!("+55 11 9{:04}-{line:04}", 6000 + next(4000)),
                    15 => format!("+49 30 {:07}", 1_000_000 + next(9_000_000)),
                    16 => format!(
                        "0033 6 {:02} {:02} {:02} {:02}",
                        next(100),
                        next(100),
                        next(100),
                        next(100)
                    ),
                    17 => format!("555-{line:04}"),
                    18 => format!("+1 {area} 0{line:04}"),
                    _ => format!("+999 {mobile}"),
                }
            })
            .collect()
    }

    /// CPU time of the calling thread in ns (Linux); the machine is shared, so wall time lies.
    fn thread_cpu_ns() -> u128 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory of the process in kB (Linux).
    fn rss_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }

    /// `cargo test --lib campaign::phone -- --ignored --nocapture` prints normalize's speed, and
    /// that of the plain crate parser (before and after the regex cache is enlarged). Run it
    /// alone: other tests in the same process enlarge the cache first.
    #[test]
    #[ignore = "prints throughput figures; run on demand"]
    fn normalize_throughput() {
        let numbers = sample_numbers(200_000);
        let n = numbers.len() as u128;
        let region = us();
        let time = |f: &dyn Fn(&String) -> bool, chunk: &[String]| {
            let cpu = thread_cpu_ns();
            let valid = chunk.iter().filter(|raw| f(raw)).count();
            (valid, thread_cpu_ns() - cpu)
        };
        let reference = |raw: &String| reference_normalize(raw, &region).is_some();
        let fast = |raw: &String| normalize(raw, &region).is_ok();

        let rss = rss_kb();
        let few = &numbers[..10_000];
        time(&reference, &few[..1_000]); // loads the metadata
        let (_, cpu) = time(&reference, few);
        println!(
            "crate parser, 100-regex cache: {} ns/number CPU",
            cpu / few.len() as u128
        );
        database(); // enlarges the cache
        let mut valid = 0;
        for round in 1..=2 {
            let (valid_ref, cpu) = time(&reference, &numbers);
            println!(
                "round {round}: crate parser, large cache: {} ns/number CPU",
                cpu / n
            );
            let start = std::time::Instant::now();
            let cpu;
            (valid, cpu) = time(&fast, &numbers);
            let wall = start.elapsed().as_nanos();
            assert_eq!(valid, valid_ref);
            println!(
                "round {round}: normalize, 1 thread: {n} numbers, {valid} valid; \
                 {} ns/number CPU, {} ns/number wall",
                cpu / n,
                wall / n
            );
        }
        let start = std::time::Instant::now();
        let (a, b) = numbers.split_at(numbers.len() / 2);
        let ((valid_a, cpu_a), (valid_b, cpu_b)) = std::thread::scope(|s| {
            let a = s.spawn(|| time(&fast, a));
            let b = s.spawn(|| time(&fast, b));
            (a.join().expect("thread a"), b.join().expect("thread b"))
        });
        let wall = start.elapsed().as_nanos();
        assert_eq!(valid, valid_a + valid_b);
        println!(
            "normalize, 2 threads: {} ns/number CPU, {} ns/number wall; RSS grew {} kB",
            (cpu_a + cpu_b) / n,
            wall / n,
            rss_kb().saturating_sub(rss)
        );
    }
}

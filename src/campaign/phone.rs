//! Phone numbers: E.164 normalization and the time zones of a number's prefix.
//! (Placeholder until the generated zone table lands.)

#[derive(Debug, Clone)]
pub struct Region(phonenumber::country::Id);

impl Region {
    pub fn parse(code: &str) -> Option<Region> {
        code.trim()
            .to_ascii_uppercase()
            .parse::<phonenumber::country::Id>()
            .ok()
            .map(Region)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("no phone number: fill in the phone column")]
    Empty,
    #[error("`{0}` is not a valid phone number: write it in international form like +14155550100")]
    Invalid(String),
}

pub fn normalize(raw: &str, default_region: &Region) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    let cleaned = match trimmed.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => trimmed.to_owned(),
    };
    let n = phonenumber::parse(Some(default_region.0), &cleaned)
        .map_err(|_| PhoneError::Invalid(trimmed.to_owned()))?;
    if !phonenumber::is_valid(&n) {
        return Err(PhoneError::Invalid(trimmed.to_owned()));
    }
    Ok(n.format().mode(phonenumber::Mode::E164).to_string())
}

pub fn zones_for(_e164: &str) -> &'static [&'static str] {
    &[]
}

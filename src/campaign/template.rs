//! `{{field}}` templates. (Placeholder until the template module lands.)

pub fn fields_used(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                out.push(after[..j].trim().to_owned());
                rest = &after[j + 2..];
            }
            None => break,
        }
    }
    out
}

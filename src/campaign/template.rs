//! `{{field}}` templates in spoken text (SPEC §3.1): substitution of a contact's fields.
//!
//! No escaping happens here: the TwiML writer escapes the rendered text.

use std::collections::BTreeMap;

/// One `{{…}}` placeholder found in a text: its byte range and the trimmed field name.
struct Placeholder<'a> {
    start: usize,
    end: usize,
    name: &'a str,
}

/// Finds the next placeholder at or after `from`. A `{{` without a closing `}}`, an empty name or
/// a name containing a brace is not a placeholder and stays literal text.
fn next_placeholder(text: &str, mut from: usize) -> Option<Placeholder<'_>> {
    loop {
        let open = from + text.get(from..)?.find("{{")?;
        let inner_start = open + 2;
        let close = inner_start + text[inner_start..].find("}}")?;
        let name = text[inner_start..close].trim();
        if !name.is_empty() && !name.contains(['{', '}']) {
            return Some(Placeholder {
                start: open,
                end: close + 2,
                name,
            });
        }
        // `{{{x}}}` and friends: retry one byte further (`{` is ASCII, so this is a char boundary).
        from = open + 1;
    }
}

/// Replaces every `{{field}}` (spaces inside the braces allowed: `{{ name }}`) with the field's
/// value; a field missing from `fields` renders as the empty string.
pub fn render(text: &str, fields: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(p) = next_placeholder(text, pos) {
        out.push_str(&text[pos..p.start]);
        if let Some(value) = fields.get(p.name) {
            out.push_str(value);
        }
        pos = p.end;
    }
    out.push_str(&text[pos..]);
    out
}

/// The distinct field names a text refers to, in order of first use.
pub fn fields_used(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut pos = 0;
    while let Some(p) = next_placeholder(text, pos) {
        if !names.iter().any(|n| n == p.name) {
            names.push(p.name.to_string());
        }
        pos = p.end;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replaces_fields_with_and_without_spaces() {
        let f = fields(&[("name", "Ana"), ("city", "Sevilla")]);
        assert_eq!(
            render("Hola {{name}}, de {{ city }}.", &f),
            "Hola Ana, de Sevilla."
        );
        assert_eq!(render("{{name}}{{name}}", &f), "AnaAna");
    }

    #[test]
    fn missing_field_renders_empty() {
        let f = fields(&[("name", "Ana")]);
        assert_eq!(render("Hola {{nombre}}!", &f), "Hola !");
    }

    #[test]
    fn does_not_escape_values() {
        let f = fields(&[("name", "<Tom & \"Jerry\">")]);
        assert_eq!(render("Hi {{name}}", &f), "Hi <Tom & \"Jerry\">");
    }

    #[test]
    fn values_are_not_expanded_again() {
        let f = fields(&[("a", "{{b}}"), ("b", "x")]);
        assert_eq!(render("{{a}}", &f), "{{b}}");
    }

    #[test]
    fn malformed_placeholders_stay_literal() {
        let f = fields(&[("name", "Ana")]);
        assert_eq!(render("Hola {{name", &f), "Hola {{name");
        assert_eq!(render("{{}} and {{  }}", &f), "{{}} and {{  }}");
        assert_eq!(render("{name}", &f), "{name}");
        assert_eq!(render("{{{name}}}", &f), "{Ana}");
        assert_eq!(render("", &f), "");
    }

    #[test]
    fn handles_multibyte_text() {
        let f = fields(&[("nombre", "Begoña")]);
        assert_eq!(
            render("¿Eres tú, {{ nombre }}? Campaña", &f),
            "¿Eres tú, Begoña? Campaña"
        );
    }

    #[test]
    fn lists_distinct_fields_in_order() {
        assert_eq!(
            fields_used("{{ name }} {{city}} {{name}} {{}} {{open"),
            vec!["name".to_string(), "city".to_string()]
        );
        assert!(fields_used("no fields here").is_empty());
    }
}

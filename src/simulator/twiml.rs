//! TwiML as the simulator reads it: a `<Response>` document parsed (quick-xml) into the verbs it
//! plays, with Twilio's documented attribute defaults.

use std::collections::HashMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// One verb of a TwiML document.
#[derive(Debug, Clone, PartialEq)]
pub enum Verb {
    Say {
        text: String,
        loops: u32,
    },
    Play {
        loops: u32,
        digits: Option<String>,
    },
    Pause {
        length: f64,
    },
    Gather(Gather),
    Redirect {
        url: String,
        method: String,
    },
    Dial {
        action: Option<String>,
        method: String,
        time_limit: f64,
    },
    Record {
        action: Option<String>,
        method: String,
        max_length: f64,
        timeout: f64,
    },
    Hangup,
    Reject,
    /// A verb the simulator does not play (`<Sms>`, `<Enqueue>`…): skipped.
    Other(String),
}

/// `<Gather>` with its nested `<Say>`/`<Play>`/`<Pause>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    pub dtmf: bool,
    pub speech: bool,
    pub action: Option<String>,
    pub method: String,
    /// Seconds of silence after the nested verbs before the gather gives up.
    pub timeout: f64,
    pub num_digits: Option<usize>,
    pub finish_on_key: String,
    pub action_on_empty_result: bool,
    pub nested: Vec<Verb>,
}

/// A document the simulator cannot play (Twilio's error 12100).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TwimlError {
    #[error("twiml is not well-formed xml: {0}")]
    Xml(String),
    #[error("twiml root element is `{0}`, expected `Response`")]
    Root(String),
    #[error("twiml document is empty")]
    Empty,
}

/// A generic element, before it becomes a verb.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attrs: HashMap<String, String>,
    text: String,
    children: Vec<Element>,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
    fn num(&self, name: &str, default: f64) -> f64 {
        self.attr(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| *v >= 0.0)
            .unwrap_or(default)
    }
    fn method(&self) -> String {
        match self.attr("method") {
            Some(m) if m.eq_ignore_ascii_case("GET") => "GET".to_owned(),
            _ => "POST".to_owned(),
        }
    }
    fn loops(&self) -> u32 {
        // `loop="0"` repeats "up to 1000" times.
        match self.attr("loop").and_then(|v| v.trim().parse::<u32>().ok()) {
            Some(0) => 1000,
            Some(n) => n,
            None => 1,
        }
    }
    fn non_empty(&self, name: &str) -> Option<String> {
        self.attr(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

/// Parses a TwiML document into its top-level verbs.
pub fn parse(xml: &str) -> Result<Vec<Verb>, TwimlError> {
    let root = parse_tree(xml)?;
    if root.name != "Response" {
        return Err(TwimlError::Root(root.name));
    }
    Ok(root.children.iter().map(verb).collect())
}

fn verb(e: &Element) -> Verb {
    match e.name.as_str() {
        "Say" => Verb::Say {
            text: e.text.clone(),
            loops: e.loops(),
        },
        "Play" => Verb::Play {
            loops: e.loops(),
            digits: e.non_empty("digits"),
        },
        "Pause" => Verb::Pause {
            length: e.num("length", 1.0),
        },
        "Gather" => {
            let input = e.attr("input").unwrap_or("dtmf").to_ascii_lowercase();
            let num_digits = e
                .attr("numDigits")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n > 0);
            Verb::Gather(Gather {
                dtmf: input.contains("dtmf"),
                speech: input.contains("speech"),
                action: e.non_empty("action"),
                method: e.method(),
                timeout: e.num("timeout", 5.0),
                num_digits,
                finish_on_key: e.attr("finishOnKey").unwrap_or("#").to_owned(),
                action_on_empty_result: e.attr("actionOnEmptyResult") == Some("true"),
                nested: e
                    .children
                    .iter()
                    .filter(|c| matches!(c.name.as_str(), "Say" | "Play" | "Pause"))
                    .map(verb)
                    .collect(),
            })
        }
        "Redirect" => Verb::Redirect {
            url: e.text.trim().to_owned(),
            method: e.method(),
        },
        "Dial" => Verb::Dial {
            action: e.non_empty("action"),
            method: e.method(),
            time_limit: e.num("timeLimit", 14400.0),
        },
        "Record" => Verb::Record {
            action: e.non_empty("action"),
            method: e.method(),
            max_length: e.num("maxLength", 3600.0),
            timeout: e.num("timeout", 5.0),
        },
        "Hangup" => Verb::Hangup,
        "Reject" => Verb::Reject,
        other => Verb::Other(other.to_owned()),
    }
}

fn start_element(start: &BytesStart<'_>) -> Result<Element, TwimlError> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attrs = HashMap::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| TwimlError::Xml(e.to_string()))?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| TwimlError::Xml(e.to_string()))?;
        attrs.insert(key, value.into_owned());
    }
    Ok(Element {
        name,
        attrs,
        ..Element::default()
    })
}

fn parse_tree(xml: &str) -> Result<Element, TwimlError> {
    let mut reader = Reader::from_str(xml);
    let xml_err = |e: quick_xml::Error| TwimlError::Xml(e.to_string());
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(xml_err)?;
        match event {
            Event::Start(start) => stack.push(start_element(&start)?),
            Event::Empty(start) => {
                let element = start_element(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| TwimlError::Xml("unbalanced end tag".to_owned()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(text) => {
                if let Some(top) = stack.last_mut() {
                    let decoded = text
                        .xml10_content()
                        .map_err(|e| TwimlError::Xml(e.to_string()))?;
                    top.text.push_str(&decoded);
                }
            }
            Event::CData(data) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(top) = stack.last_mut() {
                    let resolved = match reference.resolve_char_ref().map_err(xml_err)? {
                        Some(ch) => ch.to_string(),
                        None => {
                            let name = reference
                                .decode()
                                .map_err(|e| TwimlError::Xml(e.to_string()))?;
                            quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| {
                                    TwimlError::Xml(format!("unknown entity `&{name};`"))
                                })?
                                .to_owned()
                        }
                    };
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(TwimlError::Xml(
            "unclosed element at end of document".to_owned(),
        ));
    }
    root.ok_or(TwimlError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_verbs_with_defaults() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
            <Response>
              <Say voice="alice">Hello &amp; welcome</Say>
              <Gather input="dtmf speech" numDigits="1" action="/g?step=2">
                <Say>Press one</Say><Pause length="2"/>
              </Gather>
              <Pause/>
              <Redirect method="GET">/next</Redirect>
              <Hangup/>
            </Response>"#;
        let verbs = parse(doc).expect("valid twiml");
        assert_eq!(
            verbs[0],
            Verb::Say {
                text: "Hello & welcome".to_owned(),
                loops: 1
            }
        );
        let Verb::Gather(g) = &verbs[1] else {
            panic!("expected a gather, got {:?}", verbs[1])
        };
        assert!(g.dtmf && g.speech && !g.action_on_empty_result);
        assert_eq!(
            (g.action.as_deref(), g.method.as_str(), g.timeout),
            (Some("/g?step=2"), "POST", 5.0)
        );
        assert_eq!((g.num_digits, g.finish_on_key.as_str()), (Some(1), "#"));
        assert_eq!(
            g.nested,
            vec![
                Verb::Say {
                    text: "Press one".to_owned(),
                    loops: 1
                },
                Verb::Pause { length: 2.0 }
            ]
        );
        assert_eq!(verbs[2], Verb::Pause { length: 1.0 });
        assert_eq!(
            verbs[3],
            Verb::Redirect {
                url: "/next".to_owned(),
                method: "GET".to_owned()
            }
        );
        assert_eq!(verbs[4], Verb::Hangup);
    }

    #[test]
    fn rejects_other_roots_and_broken_xml() {
        assert_eq!(parse("<Foo/>"), Err(TwimlError::Root("Foo".to_owned())));
        assert!(matches!(
            parse("<Response><Say>x</Response>"),
            Err(TwimlError::Xml(_))
        ));
        assert_eq!(parse(""), Err(TwimlError::Empty));
    }
}

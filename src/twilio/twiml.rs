//! TwiML documents for the voice webhooks (SPEC §3.1, §6.2), written with quick-xml's writer so
//! every piece of contact data is escaped by the library.
//!
//! # URL convention for gathers
//!
//! A `<Gather>` posts to [`StepUrls::gather_action`] of its step when the callee pressed keys or
//! spoke. When the gather has a `no_input` step, the `<Gather>` is followed by
//! `<Redirect method="POST">` to **the same gather action URL**: Twilio only reaches that verb when
//! nothing was entered, and a redirect posts the call's parameters **without `Digits` and without
//! `SpeechResult`**. So the server treats a gather request that has neither (or both empty) as
//! "no input" and continues with `no_input`; anything else is an answer to match against the
//! options. Because the redirect is unconditional in that case, the step's ending (`dial`,
//! `hangup`, …) would be unreachable and is not rendered. Without `no_input`, silence falls through
//! to the ending as Twilio does by default.
//!
//! `<Record>` posts to [`StepUrls::record_action`] when the recording ends (without an `action`
//! Twilio would request the current document again and record in a loop); the server answers that
//! with [`hangup`].

use std::collections::BTreeMap;
use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

use crate::campaign::script::{Ending, Gather, GatherInput, Step, Voicemail};
use crate::campaign::template;

/// Builds the absolute callback URLs a step's TwiML points to. The caller owns the convention;
/// the expected shapes are given per method.
pub trait StepUrls {
    /// `{public_url}/twilio/gather?attempt=ID&step=STEP`: where `step`'s `<Gather>` posts, and
    /// where silence is redirected (see the module docs).
    fn gather_action(&self, step: &str) -> String;
    /// `{public_url}/twilio/voice?attempt=ID&step=STEP`: answers with the TwiML of `step`.
    fn step_url(&self, step: &str) -> String;
    /// Where `step`'s `<Record>` posts when done; answered with [`hangup`].
    fn record_action(&self, step: &str) -> String;
}

/// What a document is rendered with: the contact's fields for `{{field}}`, the campaign's `<Say>`
/// attributes, and the URL builder.
#[derive(Clone, Copy)]
pub struct RenderContext<'a> {
    pub fields: &'a BTreeMap<String, String>,
    /// `<Say voice>` when set.
    pub voice: Option<&'a str>,
    /// `<Say language>` (and `<Gather language>` for speech) when set.
    pub language: Option<&'a str>,
    pub urls: &'a dyn StepUrls,
}

/// The TwiML of one script step: say/play/pause, the gather (prompt inside), then the ending.
pub fn render_step(name: &str, step: &Step, ctx: &RenderContext<'_>) -> String {
    if let Ending::Bot(_) = step.ending {
        // the voice route opens the conversation (it calls the bot), prompts included
        return redirect_to(&ctx.urls.step_url(name));
    }
    document(|w| {
        if let Some(text) = &step.say {
            say(w, text, ctx)?;
        }
        if let Some(url) = &step.play {
            play(w, url)?;
        }
        if let Some(secs) = step.pause {
            pause(w, secs)?;
        }
        if let Some(g) = &step.gather {
            gather(w, name, g, ctx)?;
            if g.no_input.is_some() {
                redirect(w, &ctx.urls.gather_action(name))?;
                return Ok(());
            }
        }
        match &step.ending {
            Ending::None => {}
            Ending::Dial(number) => {
                w.create_element("Dial").write_text_content(text(number))?;
            }
            Ending::Record => {
                w.create_element("Record")
                    .with_attribute(("action", clean(&ctx.urls.record_action(name)).as_str()))
                    .with_attribute(("method", "POST"))
                    .write_empty()?;
            }
            Ending::Hangup => {
                w.create_element("Hangup").write_empty()?;
            }
            Ending::Next(next) => redirect(w, &ctx.urls.step_url(next))?,
            Ending::Bot(_) => {} // rendered as a redirect above
        }
        Ok(())
    })
}

/// A campaign `message`: `<Say>` then `<Hangup/>`.
pub fn render_message(message: &str, ctx: &RenderContext<'_>) -> String {
    document(|w| {
        say(w, message, ctx)?;
        w.create_element("Hangup").write_empty()?;
        Ok(())
    })
}

/// What an answering machine hears: the voicemail's say and/or play, then `<Hangup/>`.
pub fn render_voicemail(vm: &Voicemail, ctx: &RenderContext<'_>) -> String {
    document(|w| {
        if let Some(text) = &vm.say {
            say(w, text, ctx)?;
        }
        if let Some(url) = &vm.play {
            play(w, url)?;
        }
        w.create_element("Hangup").write_empty()?;
        Ok(())
    })
}

/// An empty `<Response>`: answers a message webhook without replying.
pub fn empty() -> String {
    document(|_| Ok(()))
}

/// `<Response><Redirect method="POST">url</Redirect></Response>`.
pub fn redirect_to(url: &str) -> String {
    document(|w| redirect(w, url))
}

/// `<Response><Hangup/></Response>`.
pub fn hangup() -> String {
    document(|w| {
        w.create_element("Hangup").write_empty()?;
        Ok(())
    })
}

mod bot;
pub use bot::{BotPrompt, SAY_LIMIT_BYTES, render_bot_end, render_bot_prompt, split_for_say};

type W = Writer<Vec<u8>>;

/// Writes the XML declaration and `<Response>`, with `body` inside.
fn document(body: impl FnOnce(&mut W) -> io::Result<()>) -> String {
    let mut w = Writer::new(Vec::new());
    let written: io::Result<()> = (|| {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("Response").write_inner_content(body)?;
        Ok(())
    })();
    written.expect("writing XML into a Vec<u8> cannot fail");
    String::from_utf8(w.into_inner()).expect("the XML writer only writes the UTF-8 it is given")
}

fn say(w: &mut W, raw: &str, ctx: &RenderContext<'_>) -> io::Result<()> {
    let rendered = template::render(raw, ctx.fields);
    let mut el = w.create_element("Say");
    if let Some(voice) = ctx.voice {
        el = el.with_attribute(("voice", clean(voice).as_str()));
    }
    if let Some(language) = ctx.language {
        el = el.with_attribute(("language", clean(language).as_str()));
    }
    el.write_text_content(text(&rendered))?;
    Ok(())
}

fn play(w: &mut W, url: &str) -> io::Result<()> {
    w.create_element("Play").write_text_content(text(url))?;
    Ok(())
}

fn pause(w: &mut W, secs: u32) -> io::Result<()> {
    w.create_element("Pause")
        .with_attribute(("length", secs.to_string().as_str()))
        .write_empty()?;
    Ok(())
}

fn redirect(w: &mut W, url: &str) -> io::Result<()> {
    w.create_element("Redirect")
        .with_attribute(("method", "POST"))
        .write_text_content(text(url))?;
    Ok(())
}

fn gather(w: &mut W, step: &str, g: &Gather, ctx: &RenderContext<'_>) -> io::Result<()> {
    let action = clean(&ctx.urls.gather_action(step));
    let timeout = g.timeout.to_string();
    let num_digits = g.num_digits.map(|n| n.to_string());
    let speech = matches!(g.input, GatherInput::Speech | GatherInput::DtmfSpeech);
    let hints = if speech { hints(g) } else { None };
    let language = if speech {
        ctx.language.map(clean)
    } else {
        None
    };

    let mut el = w
        .create_element("Gather")
        .with_attribute(("input", g.input.as_str()))
        .with_attribute(("timeout", timeout.as_str()));
    if let Some(n) = &num_digits {
        el = el.with_attribute(("numDigits", n.as_str()));
    }
    el = el
        .with_attribute(("action", action.as_str()))
        .with_attribute(("method", "POST"));
    if let Some(language) = &language {
        el = el.with_attribute(("language", language.as_str()));
    }
    if let Some(hints) = &hints {
        el = el.with_attribute(("hints", hints.as_str()));
    }
    match &g.prompt {
        Some(prompt) => {
            el.write_inner_content(|w| say(w, prompt, ctx))?;
        }
        None => {
            el.write_empty()?;
        }
    }
    Ok(())
}

/// The options' speech words as Twilio `hints` (comma-separated, distinct), if any.
fn hints(g: &Gather) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    for option in &g.options {
        for word in &option.speech {
            let word = clean(word).replace(',', " ").trim().to_string();
            if !word.is_empty() && !words.contains(&word) {
                words.push(word);
            }
        }
    }
    (!words.is_empty()).then(|| words.join(","))
}

/// Text content, escaped by the library.
fn text(raw: &str) -> BytesText<'static> {
    BytesText::new(&clean(raw)).into_owned()
}

/// Drops characters XML 1.0 cannot carry at all (control characters other than tab, newline and
/// carriage return; U+FFFE, U+FFFF), which escaping cannot fix.
fn clean(raw: &str) -> String {
    raw.chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::script::GatherOption;

    struct Urls;

    impl StepUrls for Urls {
        fn gather_action(&self, step: &str) -> String {
            format!("https://dialer.example/twilio/gather?attempt=7&step={step}")
        }
        fn step_url(&self, step: &str) -> String {
            format!("https://dialer.example/twilio/voice?attempt=7&step={step}")
        }
        fn record_action(&self, step: &str) -> String {
            format!("https://dialer.example/twilio/record?attempt=7&step={step}")
        }
    }

    const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ctx<'a>(fields: &'a BTreeMap<String, String>) -> RenderContext<'a> {
        RenderContext {
            fields,
            voice: None,
            language: None,
            urls: &Urls,
        }
    }

    fn say_step(ending: Ending) -> Step {
        Step {
            say: Some("Hola {{name}}.".into()),
            ending,
            ..Step::default()
        }
    }

    fn option(digits: &str, speech: &[&str], next: &str) -> GatherOption {
        GatherOption {
            digits: Some(digits.into()),
            speech: speech.iter().map(|s| s.to_string()).collect(),
            outcome: None,
            opt_out: false,
            retry_after: None,
            next: Some(next.into()),
        }
    }

    #[test]
    fn step_with_dial_ending() {
        let f = fields(&[("name", "Ana")]);
        let xml = render_step(
            "thanks",
            &say_step(Ending::Dial("+34600123456".into())),
            &ctx(&f),
        );
        assert_eq!(
            xml,
            format!("{DECL}<Response><Say>Hola Ana.</Say><Dial>+34600123456</Dial></Response>")
        );
    }

    #[test]
    fn step_with_hangup_ending() {
        let f = fields(&[("name", "Ana")]);
        let xml = render_step("bye", &say_step(Ending::Hangup), &ctx(&f));
        assert_eq!(
            xml,
            format!("{DECL}<Response><Say>Hola Ana.</Say><Hangup/></Response>")
        );
    }

    #[test]
    fn step_with_record_ending() {
        let f = fields(&[]);
        let xml = render_step("msg", &say_step(Ending::Record), &ctx(&f));
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Say>Hola .</Say><Record action=\"https://dialer.example/twilio/record?attempt=7&amp;step=msg\" method=\"POST\"/></Response>"
            )
        );
    }

    #[test]
    fn step_with_next_ending_redirects_to_the_step_url() {
        let f = fields(&[("name", "Ana")]);
        let xml = render_step("a", &say_step(Ending::Next("b".into())), &ctx(&f));
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Say>Hola Ana.</Say><Redirect method=\"POST\">https://dialer.example/twilio/voice?attempt=7&amp;step=b</Redirect></Response>"
            )
        );
    }

    #[test]
    fn step_without_ending_and_with_play_and_pause_in_order() {
        let f = fields(&[("name", "Ana")]);
        let step = Step {
            say: Some("Hola".into()),
            play: Some("https://cdn.example/a.mp3?x=1&y=2".into()),
            pause: Some(2),
            ..Step::default()
        };
        assert_eq!(
            render_step("s", &step, &ctx(&f)),
            format!(
                "{DECL}<Response><Say>Hola</Say><Play>https://cdn.example/a.mp3?x=1&amp;y=2</Play><Pause length=\"2\"/></Response>"
            )
        );
    }

    #[test]
    fn contact_data_is_escaped() {
        let f = fields(&[("name", "<Tom & \"Jerry\">\u{7}")]);
        let xml = render_step("bye", &say_step(Ending::Hangup), &ctx(&f));
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Say>Hola &lt;Tom &amp; &quot;Jerry&quot;&gt;.</Say><Hangup/></Response>"
            )
        );
        // A name cannot inject markup.
        let f = fields(&[("name", "</Say><Dial>+15550001</Dial><Say>")]);
        let xml = render_step("bye", &say_step(Ending::Hangup), &ctx(&f));
        assert!(!xml.contains("<Dial>"));
        assert!(xml.contains("&lt;/Say&gt;&lt;Dial&gt;+15550001"));
    }

    #[test]
    fn say_attributes_when_set() {
        let f = fields(&[("name", "Ana")]);
        let c = RenderContext {
            voice: Some("Polly.Lucia"),
            language: Some("es-ES"),
            ..ctx(&f)
        };
        assert_eq!(
            render_message("Hola {{ name }}", &c),
            format!(
                "{DECL}<Response><Say voice=\"Polly.Lucia\" language=\"es-ES\">Hola Ana</Say><Hangup/></Response>"
            )
        );
    }

    #[test]
    fn gather_with_dtmf_and_speech_options_and_no_input() {
        let f = fields(&[("name", "Ana")]);
        let step = Step {
            say: Some("Hola {{name}}, te llamo de Empresa ABC.".into()),
            gather: Some(Gather {
                input: GatherInput::DtmfSpeech,
                timeout: 5,
                num_digits: Some(1),
                prompt: Some("Presiona 1 o di interesado.".into()),
                options: vec![
                    option("1", &["interesado", "sí"], "thanks"),
                    option("2", &["más tarde", "interesado"], "bye"),
                    option("9", &[], "bye"),
                ],
                no_input: Some("bye_noinput".into()),
                no_match: Some("intro".into()),
            }),
            ending: Ending::Hangup,
            ..Step::default()
        };
        let c = RenderContext {
            language: Some("es-ES"),
            ..ctx(&f)
        };
        assert_eq!(
            render_step("intro", &step, &c),
            format!(
                "{DECL}<Response>\
                 <Say language=\"es-ES\">Hola Ana, te llamo de Empresa ABC.</Say>\
                 <Gather input=\"dtmf speech\" timeout=\"5\" numDigits=\"1\" \
                 action=\"https://dialer.example/twilio/gather?attempt=7&amp;step=intro\" method=\"POST\" \
                 language=\"es-ES\" hints=\"interesado,sí,más tarde\">\
                 <Say language=\"es-ES\">Presiona 1 o di interesado.</Say></Gather>\
                 <Redirect method=\"POST\">https://dialer.example/twilio/gather?attempt=7&amp;step=intro</Redirect>\
                 </Response>"
            )
        );
    }

    #[test]
    fn dtmf_gather_without_no_input_falls_through_to_the_ending() {
        let f = fields(&[]);
        let step = Step {
            gather: Some(Gather {
                input: GatherInput::Dtmf,
                timeout: 3,
                num_digits: None,
                prompt: None,
                options: vec![option("1", &["yes"], "a")],
                no_input: None,
                no_match: None,
            }),
            ending: Ending::Next("again".into()),
            ..Step::default()
        };
        let c = RenderContext {
            language: Some("en-GB"),
            ..ctx(&f)
        };
        assert_eq!(
            render_step("ask", &step, &c),
            format!(
                "{DECL}<Response>\
                 <Gather input=\"dtmf\" timeout=\"3\" \
                 action=\"https://dialer.example/twilio/gather?attempt=7&amp;step=ask\" method=\"POST\"/>\
                 <Redirect method=\"POST\">https://dialer.example/twilio/voice?attempt=7&amp;step=again</Redirect>\
                 </Response>"
            )
        );
    }

    #[test]
    fn voicemail_message_and_hangup_documents() {
        let f = fields(&[("name", "Ana")]);
        let vm = Voicemail {
            say: Some("Hola {{name}}, volveremos a intentarlo.".into()),
            play: Some("https://cdn.example/vm.mp3".into()),
        };
        assert_eq!(
            render_voicemail(&vm, &ctx(&f)),
            format!(
                "{DECL}<Response><Say>Hola Ana, volveremos a intentarlo.</Say><Play>https://cdn.example/vm.mp3</Play><Hangup/></Response>"
            )
        );
        assert_eq!(
            render_message("Aviso: {{missing}}fin", &ctx(&f)),
            format!("{DECL}<Response><Say>Aviso: fin</Say><Hangup/></Response>")
        );
        assert_eq!(hangup(), format!("{DECL}<Response><Hangup/></Response>"));
    }

    #[test]
    fn output_parses_as_xml() {
        let f = fields(&[("name", "a<b&c\"d'e]]>")]);
        let xml = render_step("bye", &say_step(Ending::Hangup), &ctx(&f));
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut texts = Vec::new();
        loop {
            match reader.read_event().expect("valid xml") {
                Event::Eof => break,
                Event::Text(t) => texts.push(t.decode().expect("utf-8").into_owned()),
                Event::GeneralRef(r) => texts.push(format!("&{};", String::from_utf8_lossy(&r))),
                _ => {}
            }
        }
        let joined = texts.concat();
        let unescaped = quick_xml::escape::unescape(&joined).expect("known entities");
        assert_eq!(unescaped, "Hola a<b&c\"d'e]]>.");
    }
}

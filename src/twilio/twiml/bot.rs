//! TwiML of a bot conversation (SPEC §13). The bot's text is the caller's prompt: it is spoken
//! as written (no `{{field}}` templating, escaped by the XML writer like every text) and split
//! into several `<Say>`s when longer than Twilio's limit.
//!
//! A turn is `<Gather input="speech">` with the bot's reply inside, followed by a `<Redirect>` to
//! the same action URL: as for script gathers (see the parent module), Twilio reaches the
//! redirect only when the caller said nothing, and it posts without `SpeechResult`, which the
//! server reads as "no input".

use std::io;

use super::{RenderContext, W, clean, document, redirect, text};

/// Bytes of text in one `<Say>`. Twilio's limit depends on the voice: 4096 characters for the
/// basic voices, 3000 for Amazon Polly, 5000 for Google, counted as "UTF-8 single byte
/// characters" (error 13521): the smallest, in bytes, holds for every voice.
pub const SAY_LIMIT_BYTES: usize = 3000;

/// Seconds the caller has to start speaking.
const LISTEN_SECONDS: u32 = 5;

/// What a bot turn asks the caller.
pub struct BotPrompt<'a> {
    /// The bot's replies, in order (one `<Say>` each, or more when long).
    pub texts: &'a [String],
    /// Where the caller's words are posted (and silence redirected).
    pub action: &'a str,
    /// Speech recognition and `<Say>` language.
    pub language: Option<&'a str>,
}

/// The TwiML of a turn: the step's own `say` first (on the opening turn), then the speech
/// `<Gather>` with the bot's replies inside, then the no-input redirect.
pub fn render_bot_prompt(
    step_say: Option<&str>,
    prompt: &BotPrompt<'_>,
    ctx: &RenderContext<'_>,
) -> String {
    let language = prompt.language.or(ctx.language);
    document(|w| {
        if let Some(say) = step_say {
            super::say(w, say, &RenderContext { language, ..*ctx })?;
        }
        let action = clean(prompt.action);
        let timeout = LISTEN_SECONDS.to_string();
        let language_attr = language.map(clean);
        let mut el = w
            .create_element("Gather")
            .with_attribute(("input", "speech"))
            .with_attribute(("timeout", timeout.as_str()))
            .with_attribute(("speechTimeout", "auto"))
            .with_attribute(("action", action.as_str()))
            .with_attribute(("method", "POST"));
        if let Some(l) = &language_attr {
            el = el.with_attribute(("language", l.as_str()));
        }
        if prompt.texts.iter().all(|t| t.trim().is_empty()) {
            el.write_empty()?;
        } else {
            el.write_inner_content(|w| says(w, prompt.texts, ctx.voice, language))?;
        }
        redirect(w, prompt.action)
    })
}

/// The end of a conversation: the bot's last replies, then a redirect to `next` (a step's URL)
/// or, without one, `<Hangup/>`.
pub fn render_bot_end(
    texts: &[String],
    next: Option<&str>,
    language: Option<&str>,
    ctx: &RenderContext<'_>,
) -> String {
    let language = language.or(ctx.language);
    document(|w| {
        says(w, texts, ctx.voice, language)?;
        match next {
            Some(url) => redirect(w, url),
            None => {
                w.create_element("Hangup").write_empty()?;
                Ok(())
            }
        }
    })
}

fn says(
    w: &mut W,
    texts: &[String],
    voice: Option<&str>,
    language: Option<&str>,
) -> io::Result<()> {
    for part in texts.iter().flat_map(|t| split_for_say(t, SAY_LIMIT_BYTES)) {
        let mut el = w.create_element("Say");
        if let Some(v) = voice {
            el = el.with_attribute(("voice", clean(v).as_str()));
        }
        if let Some(l) = language {
            el = el.with_attribute(("language", clean(l).as_str()));
        }
        el.write_text_content(text(&part))?;
    }
    Ok(())
}

/// Splits `text` into pieces of at most `limit` bytes, at whitespace when there is some (a word
/// longer than the limit is cut at a character boundary). Blank text gives no piece.
pub fn split_for_say(text: &str, limit: usize) -> Vec<String> {
    let limit = limit.max(4);
    let mut pieces = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let mut word = word;
        while word.len() > limit {
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            let mut cut = limit;
            while !word.is_char_boundary(cut) {
                cut -= 1;
            }
            pieces.push(word[..cut].to_owned());
            word = &word[cut..];
        }
        let extra = if current.is_empty() { 0 } else { 1 };
        if current.len() + extra + word.len() > limit {
            pieces.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::StepUrls;
    use super::*;

    struct NoUrls;
    impl StepUrls for NoUrls {
        fn gather_action(&self, _: &str) -> String {
            String::new()
        }
        fn step_url(&self, _: &str) -> String {
            String::new()
        }
        fn record_action(&self, _: &str) -> String {
            String::new()
        }
    }

    const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

    #[test]
    fn a_turn_is_a_speech_gather_with_the_bot_reply_then_the_no_input_redirect() {
        let fields = BTreeMap::from([("name".to_owned(), "Ana".to_owned())]);
        let ctx = RenderContext {
            fields: &fields,
            voice: Some("Polly.Lupe"),
            language: Some("es-ES"),
            urls: &NoUrls,
        };
        let texts = vec![
            "Hola, <soy> el asistente & \"Co\".".to_owned(),
            "¿En qué te ayudo?".to_owned(),
        ];
        let xml = render_bot_prompt(
            Some("Hola {{name}}."),
            &BotPrompt {
                texts: &texts,
                action: "https://d.example/twilio/bot?attempt=3&session=1",
                language: Some("es-CL"),
            },
            &ctx,
        );
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Say voice=\"Polly.Lupe\" language=\"es-CL\">Hola Ana.</Say>\
                 <Gather input=\"speech\" timeout=\"5\" speechTimeout=\"auto\" \
                 action=\"https://d.example/twilio/bot?attempt=3&amp;session=1\" method=\"POST\" language=\"es-CL\">\
                 <Say voice=\"Polly.Lupe\" language=\"es-CL\">Hola, &lt;soy&gt; el asistente &amp; &quot;Co&quot;.</Say>\
                 <Say voice=\"Polly.Lupe\" language=\"es-CL\">¿En qué te ayudo?</Say></Gather>\
                 <Redirect method=\"POST\">https://d.example/twilio/bot?attempt=3&amp;session=1</Redirect></Response>"
            )
        );
    }

    #[test]
    fn bot_text_is_not_a_template_and_cannot_inject_verbs() {
        let fields = BTreeMap::from([("secret".to_owned(), "s3cr3t".to_owned())]);
        let ctx = RenderContext {
            fields: &fields,
            voice: None,
            language: None,
            urls: &NoUrls,
        };
        let texts = vec!["{{secret}}</Say><Dial>+15550001</Dial>".to_owned()];
        let xml = render_bot_end(&texts, None, None, &ctx);
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Say>{{{{secret}}}}&lt;/Say&gt;&lt;Dial&gt;+15550001&lt;/Dial&gt;</Say><Hangup/></Response>"
            )
        );
        let xml = render_bot_end(
            &[],
            Some("https://d.example/twilio/voice?attempt=1&step=a"),
            None,
            &ctx,
        );
        assert_eq!(
            xml,
            format!(
                "{DECL}<Response><Redirect method=\"POST\">https://d.example/twilio/voice?attempt=1&amp;step=a</Redirect></Response>"
            )
        );
    }

    #[test]
    fn long_replies_are_split_under_the_say_limit() {
        assert_eq!(split_for_say("  ", 10), Vec::<String>::new());
        assert_eq!(
            split_for_say("uno dos tres cuatro", 8),
            vec!["uno dos", "tres", "cuatro"]
        );
        assert_eq!(
            split_for_say("ñññññ", 5),
            vec!["ññ", "ññ", "ñ"],
            "cut at character boundaries, in bytes"
        );
        let long = "palabra ".repeat(1000); // 8000 bytes
        let pieces = split_for_say(&long, SAY_LIMIT_BYTES);
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|p| p.len() <= SAY_LIMIT_BYTES));
        assert_eq!(pieces.join(" "), long.trim_end());

        let fields = BTreeMap::new();
        let ctx = RenderContext {
            fields: &fields,
            voice: None,
            language: None,
            urls: &NoUrls,
        };
        let xml = render_bot_end(&[long], None, None, &ctx);
        assert_eq!(xml.matches("<Say>").count(), 3, "{xml}");
    }
}

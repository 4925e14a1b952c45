//! Snapshot tests: the TwiML of every step of every shipped campaign, compared with the files in
//! `tests/snapshots/`. After an intended change, regenerate them with
//! `UPDATE_SNAPSHOTS=1 cargo test --lib snapshots` and review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::twiml::{self, RenderContext, StepUrls};
use crate::campaign::json::{self, Defaults};
use crate::campaign::model::Content;

struct Urls;

impl StepUrls for Urls {
    fn gather_action(&self, step: &str) -> String {
        format!("https://dialer.example.com/twilio/gather?attempt=1&step={step}")
    }
    fn step_url(&self, step: &str) -> String {
        format!("https://dialer.example.com/twilio/voice?attempt=1&step={step}")
    }
    fn record_action(&self, step: &str) -> String {
        format!("https://dialer.example.com/twilio/record?attempt=1&step={step}")
    }
}

#[test]
fn shipped_campaigns_render_as_their_snapshots() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let fields: BTreeMap<String, String> = [
        ("name", "Ann O'Neil & Co"),
        ("appointment", "Tuesday at 10 AM"),
        ("phone", "+12125550101"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let ctx = RenderContext {
        fields: &fields,
        voice: None,
        language: None,
        urls: &Urls,
    };
    let mut checked = 0;
    let mut files: Vec<_> = std::fs::read_dir(root.join("campaigns"))
        .expect("campaigns/")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("campaign file");
        let campaign = json::parse(
            &text,
            Defaults {
                timezone: chrono_tz::UTC,
            },
        )
        .expect("valid")
        .campaign;
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_owned();
        let mut docs: Vec<(String, String)> = match &campaign.content {
            Content::Draft => continue,
            Content::Message(m) => vec![("message".into(), twiml::render_message(m, &ctx))],
            Content::Script(s) => s
                .steps
                .iter()
                .map(|(n, st)| (n.clone(), twiml::render_step(n, st, &ctx)))
                .collect(),
        };
        if let Content::Script(s) = &campaign.content
            && let Some(vm) = &s.voicemail
        {
            docs.push(("voicemail".into(), twiml::render_voicemail(vm, &ctx)));
        }
        for (name, xml) in docs {
            let path = root
                .join("tests/snapshots")
                .join(&stem)
                .join(format!("{name}.xml"));
            if update {
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(&path, format!("{xml}\n")).expect("write snapshot");
            }
            let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
                panic!(
                    "missing snapshot {}: run with UPDATE_SNAPSHOTS=1",
                    path.display()
                )
            });
            assert_eq!(
                format!("{xml}\n"),
                expected,
                "TwiML of {stem}/{name} changed"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} snapshots checked");
}

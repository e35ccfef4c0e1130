//! The telemetry composer: the template and properties being edited, the send counter, the
//! auto-send schedule and the log of sent messages with their status.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use ratatui_textarea::TextArea;

use super::template::{self, Values};
use crate::app::body::{escape, preview_of};
use iothub::property_bag::PropertyBag;

/// What the composer holds at start: every placeholder, so the first send shows them all.
pub const DEFAULT_TEMPLATE: &str =
    "{\n  \"temperature\": {{rand 20.0 25.0}},\n  \"seq\": {{seq}},\n  \"time\": \"{{now}}\"\n}";
pub const DEFAULT_PROPERTIES: &str = "source=hubtui";
/// Auto-send periods `+` and `-` step through, in seconds.
pub const INTERVALS: [u64; 7] = [1, 2, 5, 10, 30, 60, 300];
const DEFAULT_INTERVAL: usize = 2;
/// Sent messages kept in the log.
pub const SENT_LOG: usize = 200;

#[derive(Clone, Debug, PartialEq)]
pub enum SendStatus {
    /// Handed to the device task; its answer has not come back yet.
    Waiting,
    /// In the MQTT client's queue (QoS 1: it is retried until the hub acknowledges it).
    Queued,
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct SentMessage {
    pub id: u64,
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// The body on one escaped line.
    pub preview: String,
    /// `k=v, k=v`, escaped.
    pub properties: String,
    pub status: SendStatus,
}

/// A message ready to go.
#[derive(Clone, Debug, PartialEq)]
pub struct Composed {
    pub seq: u64,
    pub body: String,
    pub properties: PropertyBag,
}

#[derive(Debug)]
pub struct Composer {
    pub template: TextArea<'static>,
    pub properties: TextArea<'static>,
    /// `{{seq}}` of the next send.
    pub seq: u64,
    pub auto: bool,
    interval: usize,
    pub next_send: Option<Instant>,
    /// Newest first.
    pub sent: VecDeque<SentMessage>,
    rng: StdRng,
}

fn textarea(text: &str) -> TextArea<'static> {
    let mut t = TextArea::new(text.lines().map(str::to_owned).collect());
    t.set_tab_length(2);
    super::style_editor(&mut t, false);
    t
}

impl Composer {
    pub fn new(seed: u64) -> Composer {
        Composer {
            template: textarea(DEFAULT_TEMPLATE),
            properties: textarea(DEFAULT_PROPERTIES),
            seq: 1,
            auto: false,
            interval: DEFAULT_INTERVAL,
            next_send: None,
            sent: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Replaces the template's text (the counter stays).
    pub fn set_template(&mut self, text: &str) {
        self.template = textarea(text);
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(INTERVALS[self.interval])
    }

    /// One step shorter (`faster`) or longer; false at either end.
    pub fn step_interval(&mut self, faster: bool) -> bool {
        let next = if faster {
            self.interval.checked_sub(1)
        } else {
            Some(self.interval + 1).filter(|i| *i < INTERVALS.len())
        };
        match next {
            Some(i) => {
                self.interval = i;
                true
            }
            None => false,
        }
    }

    /// Expands the template and reads the properties; the counter moves on only when the
    /// message is good. The error is one sentence for the status bar.
    pub fn compose(&mut self, now: DateTime<Utc>) -> Result<Composed, String> {
        let text = self.template.lines().join("\n");
        let body = template::expand(
            &text,
            &mut Values {
                seq: self.seq,
                now,
                rng: &mut self.rng,
            },
        )
        .map_err(|e| e.to_string())?;
        let properties = parse_properties(&self.properties.lines().join("\n"))?;
        let seq = self.seq;
        self.seq += 1;
        Ok(Composed {
            seq,
            body,
            properties,
        })
    }

    /// Logs a message handed to the device task.
    pub fn record(&mut self, id: u64, msg: &Composed, at: DateTime<Utc>) {
        let properties = msg
            .properties
            .entries
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v.as_deref().unwrap_or(""))))
            .collect::<Vec<_>>()
            .join(", ");
        let compact = serde_json::from_str::<serde_json::Value>(&msg.body)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| msg.body.clone());
        self.sent.push_front(SentMessage {
            id,
            seq: msg.seq,
            at,
            preview: preview_of(&compact),
            properties,
            status: SendStatus::Waiting,
        });
        self.sent.truncate(SENT_LOG);
    }

    /// The device task's answer for message `id`; false when it is no longer in the log.
    pub fn settle(&mut self, id: u64, result: Result<(), String>) -> bool {
        let Some(m) = self.sent.iter_mut().find(|m| m.id == id) else {
            return false;
        };
        m.status = match result {
            Ok(()) => SendStatus::Queued,
            Err(e) => SendStatus::Failed(e),
        };
        true
    }
}

/// Application properties, one `key=value` per line (blank lines skipped). Names starting
/// with `$` are system properties, which IoT Hub sets itself.
pub fn parse_properties(text: &str) -> Result<PropertyBag, String> {
    let mut bag = PropertyBag::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!(
                "property line {} is not key=value: write one name=value pair per line",
                i + 1
            ));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("property line {} has no name before =", i + 1));
        }
        if k.starts_with('$') {
            return Err(format!(
                "property line {}: names starting with $ are system properties, which the hub sets",
                i + 1
            ));
        }
        bag.set(k, Some(v.trim().to_owned()));
    }
    Ok(bag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_key_value_lines() {
        let bag = parse_properties("a=1\n\n b = two words \nc=").unwrap();
        assert_eq!(
            bag.entries,
            vec![
                ("a".into(), Some("1".into())),
                ("b".into(), Some("two words".into())),
                ("c".into(), Some(String::new())),
            ]
        );
        assert_eq!(
            parse_properties("a=1\nnope").unwrap_err(),
            "property line 2 is not key=value: write one name=value pair per line"
        );
        assert!(parse_properties("=1").is_err());
        assert!(parse_properties("$.mid=1").is_err());
    }

    #[test]
    fn the_counter_moves_only_on_a_good_message() {
        let mut c = Composer::new(1);
        let now = Utc::now();
        let m = c.compose(now).unwrap();
        assert_eq!(m.seq, 1);
        assert!(m.body.contains("\"seq\": 1,"), "{}", m.body);
        c.template = textarea("{{oops}}");
        assert!(c.compose(now).is_err());
        assert_eq!(c.seq, 2);
    }

    #[test]
    fn interval_steps_stop_at_the_ends() {
        let mut c = Composer::new(1);
        assert_eq!(c.interval(), Duration::from_secs(5));
        assert!(c.step_interval(true));
        assert!(c.step_interval(true));
        assert!(!c.step_interval(true));
        assert_eq!(c.interval(), Duration::from_secs(1));
    }
}

//! C2D tab: the message form (payload, properties, ids, content type and encoding, expiry,
//! ack mode), the list of sent messages with feedback shown against each, and purge.

use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use client::events::{AckMode, C2dMessage, HubCommand, HubEvent};

use super::body::{escape, preview_of};
use super::form::{Edit, Form, cycle, edit};
use super::input::{JsonEditor, TextField};
use super::{Action, App, Confirm, ConfirmAction};

/// Sent messages remembered.
const MAX_SENT: usize = 200;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum C2dField {
    #[default]
    Payload,
    Properties,
    MessageId,
    CorrelationId,
    ContentType,
    ContentEncoding,
    Expiry,
    Ack,
}

impl C2dField {
    pub const ORDER: [C2dField; 8] = [
        C2dField::Payload,
        C2dField::Properties,
        C2dField::MessageId,
        C2dField::CorrelationId,
        C2dField::ContentType,
        C2dField::ContentEncoding,
        C2dField::Expiry,
        C2dField::Ack,
    ];

    pub fn label(self) -> &'static str {
        match self {
            C2dField::Payload => "payload",
            C2dField::Properties => "properties (k=v; k2=v2)",
            C2dField::MessageId => "message id (empty: generated)",
            C2dField::CorrelationId => "correlation id",
            C2dField::ContentType => "content type",
            C2dField::ContentEncoding => "content encoding",
            C2dField::Expiry => "expiry (seconds, empty: hub default)",
            C2dField::Ack => "ack (a cycles; Space while editing)",
        }
    }
}

#[derive(Clone, Debug)]
pub struct C2dForm {
    /// Any text; JSON validity is shown but not required.
    pub payload: JsonEditor,
    pub properties: TextField,
    pub message_id: TextField,
    pub correlation_id: TextField,
    pub content_type: TextField,
    pub content_encoding: TextField,
    pub expiry: TextField,
    pub ack: AckMode,
    pub focus: C2dField,
}

impl Default for C2dForm {
    fn default() -> Self {
        Self {
            payload: JsonEditor::new("{}"),
            properties: TextField::default(),
            message_id: TextField::default(),
            correlation_id: TextField::default(),
            content_type: TextField::new("application/json"),
            content_encoding: TextField::new("utf-8"),
            expiry: TextField::default(),
            ack: AckMode::None,
            focus: C2dField::Payload,
        }
    }
}

impl C2dForm {
    pub fn text_field(&self, field: C2dField) -> Option<&TextField> {
        Some(match field {
            C2dField::Properties => &self.properties,
            C2dField::MessageId => &self.message_id,
            C2dField::CorrelationId => &self.correlation_id,
            C2dField::ContentType => &self.content_type,
            C2dField::ContentEncoding => &self.content_encoding,
            C2dField::Expiry => &self.expiry,
            C2dField::Payload | C2dField::Ack => return None,
        })
    }

    fn text_field_mut(&mut self, field: C2dField) -> Option<&mut TextField> {
        Some(match field {
            C2dField::Properties => &mut self.properties,
            C2dField::MessageId => &mut self.message_id,
            C2dField::CorrelationId => &mut self.correlation_id,
            C2dField::ContentType => &mut self.content_type,
            C2dField::ContentEncoding => &mut self.content_encoding,
            C2dField::Expiry => &mut self.expiry,
            C2dField::Payload | C2dField::Ack => return None,
        })
    }
}

impl Form for C2dForm {
    fn step_focus(&mut self, by: isize) {
        self.focus = cycle(&C2dField::ORDER, self.focus, by);
    }

    fn takes_enter(&self) -> bool {
        matches!(self.focus, C2dField::Payload | C2dField::Ack)
    }

    fn input(&mut self, key: KeyEvent) -> bool {
        match self.focus {
            C2dField::Payload => self.payload.handle(key),
            C2dField::Ack if matches!(key.code, KeyCode::Char(' ') | KeyCode::Enter) => {
                self.ack = self.ack.next();
                true
            }
            field => self.text_field_mut(field).is_some_and(|t| t.handle(key)),
        }
    }
}

/// "k=v; k2=v2" → pairs; an entry without '=' is an error naming it.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!(
                "the property \"{}\" needs the form name=value",
                escape(p)
            )),
        })
        .collect()
}

/// Where a sent message stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Sending,
    Sent,
    /// Feedback arrived: success, expired, deliveryCountExceeded, rejected, purged.
    Feedback(String),
    /// Not sent: why, escaped.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    pub message_id: String,
    pub device_id: String,
    pub preview: String,
    pub ack: AckMode,
    pub delivery: Delivery,
}

#[derive(Clone, Debug, Default)]
pub struct C2dState {
    pub form: C2dForm,
    pub editing: bool,
    /// Newest last.
    pub sent: Vec<SentMessage>,
    pub form_error: Option<String>,
}

fn build(app: &mut App, device_id: String) -> Result<C2dMessage, String> {
    let f = &app.c2d.form;
    let properties = parse_properties(f.properties.value())?;
    let expiry = match f.expiry.value().trim() {
        "" => None,
        s => Some(Duration::from_secs(s.parse().map_err(|_| {
            "the expiry must be a whole number of seconds".to_string()
        })?)),
    };
    let opt = |t: &TextField| Some(t.value().trim().to_string()).filter(|s| !s.is_empty());
    let (correlation_id, content_type, content_encoding) = (
        opt(&f.correlation_id),
        opt(&f.content_type),
        opt(&f.content_encoding),
    );
    let message_id = match opt(&f.message_id) {
        Some(id) => id,
        None => {
            let n = app.fresh_id();
            format!("{}-{n}", app.config.message_id_prefix)
        }
    };
    let f = &app.c2d.form;
    Ok(C2dMessage {
        device_id,
        payload: f.payload.text().into_bytes(),
        message_id,
        correlation_id,
        content_type,
        content_encoding,
        expiry,
        ack: f.ack,
        properties,
    })
}

fn send(app: &mut App, cmds: &mut Vec<HubCommand>) {
    let Some(device) = app.selected_device.clone() else {
        app.c2d.form_error = Some("pick a device in Devices first".into());
        return;
    };
    match build(app, device) {
        Ok(msg) => {
            app.c2d.sent.push(SentMessage {
                message_id: msg.message_id.clone(),
                device_id: msg.device_id.clone(),
                preview: preview_of(&String::from_utf8_lossy(&msg.payload)),
                ack: msg.ack,
                delivery: Delivery::Sending,
            });
            if app.c2d.sent.len() > MAX_SENT {
                app.c2d.sent.remove(0);
            }
            app.c2d.form_error = None;
            app.c2d.editing = false;
            cmds.push(HubCommand::SendC2d(msg));
        }
        Err(e) => app.c2d.form_error = Some(e),
    }
}

pub(super) fn on_action(app: &mut App, action: &Action, cmds: &mut Vec<HubCommand>) -> bool {
    if app.c2d.editing {
        return match edit(&mut app.c2d.form, action) {
            Edit::Leave => {
                app.c2d.editing = false;
                true
            }
            Edit::Submit => {
                send(app, cmds);
                true
            }
            Edit::Done(changed) => changed,
            Edit::Ignored => false,
        };
    }
    match action {
        Action::EditForm => app.c2d.editing = true,
        Action::SendC2d => send(app, cmds),
        Action::CycleAck => app.c2d.form.ack = app.c2d.form.ack.next(),
        Action::PurgeQueue => {
            let Some(device) = app.selected_device.clone() else {
                app.error("pick a device in Devices first");
                return true;
            };
            app.confirm = Some(Confirm {
                question: format!(
                    "Purge every queued cloud-to-device message of {}?",
                    escape(&device)
                ),
                on_yes: ConfirmAction::PurgeQueue(device),
            });
        }
        _ => return false,
    }
    true
}

pub(super) fn on_event(app: &mut App, event: &HubEvent) -> bool {
    let (id, delivery) = match event {
        HubEvent::C2dSent { message_id } => (message_id, Delivery::Sent),
        HubEvent::C2dFailed { message_id, reason } => {
            app.error(format!("not sent: {}", escape(reason)));
            (message_id, Delivery::Failed(escape(reason).into_owned()))
        }
        HubEvent::C2dFeedback {
            original_message_id,
            status,
        } => (original_message_id, Delivery::Feedback(status.clone())),
        HubEvent::Purged { device_id, count } => {
            app.notice(format!(
                "purged {count} queued messages of {}",
                escape(device_id)
            ));
            return true;
        }
        _ => return false,
    };
    match app.c2d.sent.iter_mut().rev().find(|m| &m.message_id == id) {
        Some(m) => {
            // Feedback can overtake the send confirmation; it wins.
            if !(matches!(m.delivery, Delivery::Feedback(_)) && delivery == Delivery::Sent) {
                m.delivery = delivery;
            }
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse() {
        assert_eq!(
            parse_properties(" a=1; b = x ;;"),
            Ok(vec![("a".into(), "1".into()), ("b".into(), "x".into())])
        );
        assert_eq!(parse_properties(""), Ok(vec![]));
        assert!(
            parse_properties("novalue")
                .unwrap_err()
                .contains("\"novalue\"")
        );
    }
}

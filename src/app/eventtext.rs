//! `EventText`: the strings of one telemetry message (device id, module id, system and
//! application properties) in one buffer. The ring holds thousands of messages and evicts
//! one for each that arrives; a `String` per name and value made that a dozen allocations
//! and frees per message, this makes it two.

/// Device id, module id and properties, unescaped, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventText {
    /// Every piece, one after the other: device, module ("" when none), then each
    /// property's name and value, system properties first.
    buf: Box<str>,
    /// End of each piece in `buf`.
    ends: Box<[u32]>,
    has_module: bool,
    /// Number of system properties.
    system: usize,
}

type Props = [(String, String)];

impl EventText {
    pub fn new(device: &str, module: Option<&str>, system: &Props, application: &Props) -> Self {
        let props = || system.iter().chain(application);
        let pieces = || {
            [device, module.unwrap_or("")]
                .into_iter()
                .chain(props().flat_map(|(k, v)| [k.as_str(), v.as_str()]))
        };
        let mut buf = String::with_capacity(pieces().map(str::len).sum());
        let mut ends = Vec::with_capacity(2 + 2 * (system.len() + application.len()));
        for p in pieces() {
            buf.push_str(p);
            // Messages are at most a few hundred KiB, far below u32::MAX.
            ends.push(u32::try_from(buf.len()).unwrap_or(u32::MAX));
        }
        Self {
            buf: buf.into_boxed_str(),
            ends: ends.into_boxed_slice(),
            has_module: module.is_some(),
            system: system.len(),
        }
    }

    fn piece(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.buf[start..self.ends[i] as usize]
    }

    pub fn device_id(&self) -> &str {
        self.piece(0)
    }

    pub fn module_id(&self) -> Option<&str> {
        self.has_module.then(|| self.piece(1))
    }

    fn props(&self, from: usize, to: usize) -> impl ExactSizeIterator<Item = (&str, &str)> {
        (from..to).map(|i| (self.piece(2 + 2 * i), self.piece(3 + 2 * i)))
    }

    /// (name, value) of each system property, in the order received.
    pub fn system_properties(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.props(0, self.system)
    }

    /// (name, value) of each application property, in the order received.
    pub fn application_properties(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.props(self.system, (self.ends.len() - 2) / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pieces_come_back_as_given() {
        let sys = pairs(&[("message-id", "m-1"), ("dt-subject", "")]);
        let app = pairs(&[("é", "\u{1b}x")]);
        let t = EventText::new("dev", Some("mod"), &sys, &app);
        assert_eq!(t.device_id(), "dev");
        assert_eq!(t.module_id(), Some("mod"));
        assert_eq!(
            t.system_properties().collect::<Vec<_>>(),
            [("message-id", "m-1"), ("dt-subject", "")]
        );
        assert_eq!(
            t.application_properties().collect::<Vec<_>>(),
            [("é", "\u{1b}x")]
        );
        let bare = EventText::new("", None, &[], &[]);
        assert_eq!((bare.device_id(), bare.module_id()), ("", None));
        assert_eq!(bare.system_properties().len(), 0);
        assert_eq!(bare.application_properties().len(), 0);
        assert_eq!(
            EventText::new("d", Some(""), &[], &[]).module_id(),
            Some("")
        );
    }
}

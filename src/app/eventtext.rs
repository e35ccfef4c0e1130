//! `EventText`: the strings of one telemetry message (device id, module id, system and
//! application properties) in one buffer. The ring holds thousands of messages and evicts
//! one for each that arrives; a `String` per name and value made that a dozen allocations
//! and frees per message, this makes it one (none once the ring is full: see `new_in`).

/// Device id, module id and properties, unescaped, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventText {
    /// The number of pieces, the end of each (u32, little endian, counted from the first
    /// piece), then every piece one after the other: device, module ("" when none), then
    /// each property's name and value, system properties first.
    buf: Vec<u8>,
    has_module: bool,
    /// Number of system properties.
    system: usize,
}

type Props = [(String, String)];

impl EventText {
    pub fn new(device: &str, module: Option<&str>, system: &Props, application: &Props) -> Self {
        Self::new_in(Vec::new(), device, module, system, application)
    }

    /// `new`, writing into `buf` (the buffer of a message the ring dropped): a full ring
    /// then allocates and frees nothing for the strings of each arriving message.
    pub fn new_in(
        mut buf: Vec<u8>,
        device: &str,
        module: Option<&str>,
        system: &Props,
        application: &Props,
    ) -> Self {
        let props = system.iter().chain(application);
        let count = 2 + 2 * (system.len() + application.len());
        let text_len = device.len()
            + module.map_or(0, str::len)
            + props.clone().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let len = 4 * (1 + count) + text_len;
        buf.clear();
        // A buffer much larger than needed (from an unusually large message) is not kept.
        if buf.capacity() > 4 * len.max(256) {
            buf = Vec::new();
        }
        buf.reserve_exact(len);
        // Messages are at most a few hundred KiB, far below u32::MAX.
        let u32_of = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        buf.extend_from_slice(&u32_of(count));
        let mut end = 0;
        let pieces = [device, module.unwrap_or("")]
            .into_iter()
            .chain(props.clone().flat_map(|(k, v)| [k.as_str(), v.as_str()]));
        for p in pieces.clone() {
            end += p.len();
            buf.extend_from_slice(&u32_of(end));
        }
        for p in pieces {
            buf.extend_from_slice(p.as_bytes());
        }
        Self {
            buf,
            has_module: module.is_some(),
            system: system.len(),
        }
    }

    /// The buffer, for reuse by `new_in`.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    fn word(&self, i: usize) -> usize {
        let b = &self.buf[4 * i..4 * i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    fn count(&self) -> usize {
        self.word(0)
    }

    fn piece(&self, i: usize) -> &str {
        let base = 4 * (1 + self.count());
        let start = if i == 0 { 0 } else { self.word(i) };
        // Each piece was a whole `str`, so this never fails.
        std::str::from_utf8(&self.buf[base + start..base + self.word(i + 1)]).unwrap_or("")
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
        self.props(self.system, (self.count() - 2) / 2)
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
        let again = EventText::new_in(t.into_buffer(), "x", None, &app, &sys);
        assert_eq!((again.device_id(), again.module_id()), ("x", None));
        assert_eq!(
            again.system_properties().collect::<Vec<_>>(),
            [("é", "\u{1b}x")]
        );
        assert_eq!(again.application_properties().len(), 2);
    }
}

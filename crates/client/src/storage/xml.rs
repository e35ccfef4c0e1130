//! Reading the Blob service's XML bodies with quick-xml: one walk that hands each
//! element's text (entities resolved) to the caller with the element path. Bounded,
//! because the server (or anything pretending to be it) controls the body.

use quick_xml::events::Event;

/// Deeper nesting than any Blob service body has.
const MAX_DEPTH: usize = 16;
/// Longer element text than any field we read (blob names are at most 1,024 characters).
const MAX_TEXT: usize = 8 * 1024;

/// Calls `on_element(path, text)` when each element ends, with the element names from the
/// root down (`["EnumerationResults", "Blobs", "Blob", "Name"]`) and the element's own text.
pub(crate) fn walk(
    body: &[u8],
    mut on_element: impl FnMut(&[String], &str) -> Result<(), String>,
) -> Result<(), String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut path: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                if path.len() >= MAX_DEPTH {
                    return Err(format!("XML nested deeper than {MAX_DEPTH} elements"));
                }
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                texts.push(String::new());
            }
            Ok(Event::Empty(e)) => {
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                on_element(&path, "")?;
                path.pop();
            }
            Ok(Event::Text(t)) => {
                let text = t.decode().map_err(|e| e.to_string())?;
                push_text(&mut texts, &text)?;
            }
            Ok(Event::CData(t)) => {
                push_text(&mut texts, &String::from_utf8_lossy(&t))?;
            }
            Ok(Event::GeneralRef(r)) => {
                let resolved = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown XML entity &{name};"))?
                            .to_string()
                    }
                };
                push_text(&mut texts, &resolved)?;
            }
            Ok(Event::End(_)) => {
                let text = texts.pop().unwrap_or_default();
                on_element(&path, text.trim())?;
                path.pop();
            }
            Ok(Event::Eof) => break,
            Ok(Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        buf.clear();
    }
    Ok(())
}

fn push_text(texts: &mut [String], piece: &str) -> Result<(), String> {
    if let Some(current) = texts.last_mut() {
        if current.len() + piece.len() > MAX_TEXT {
            return Err(format!("an XML element holds more than {MAX_TEXT} bytes"));
        }
        current.push_str(piece);
    }
    Ok(())
}

/// The `<Message>` of a storage error body (`<Error><Code/><Message/></Error>`), first line.
pub(crate) fn error_message(body: &[u8]) -> Option<String> {
    let mut message = None;
    let _ = walk(body, |path, text| {
        if path == ["Error", "Message"] {
            message = Some(text.lines().next().unwrap_or("").to_string());
        }
        Ok(())
    });
    message.filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_come_with_their_path_and_entities_resolved() {
        let body = b"<?xml version=\"1.0\"?><A><B x=\"1\">a &amp; b &#x41;</B><C/></A>";
        let mut seen = Vec::new();
        walk(body, |path, text| {
            seen.push((path.join("/"), text.to_string()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                ("A/B".to_string(), "a & b A".to_string()),
                ("A/C".into(), "".into()),
                ("A".into(), "".into())
            ]
        );
    }

    #[test]
    fn bodies_out_of_bounds_are_refused() {
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(walk(deep.as_bytes(), |_, _| Ok(())).is_err());
        let long = format!("<a>{}</a>", "x".repeat(MAX_TEXT + 1));
        assert!(walk(long.as_bytes(), |_, _| Ok(())).is_err());
        assert!(walk(b"<a>&bogus;</a>", |_, _| Ok(())).is_err());
    }

    #[test]
    fn error_message_is_the_first_line_of_message() {
        let body = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>BlobNotFound</Code>\
            <Message>The specified blob does not exist.\nRequestId:1</Message></Error>";
        assert_eq!(
            error_message(body).as_deref(),
            Some("The specified blob does not exist.")
        );
        assert_eq!(error_message(b"not xml at all"), None);
        assert_eq!(error_message(b"<Other><Message>x</Message></Other>"), None);
    }
}

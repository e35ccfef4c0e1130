//! The Blob service's XML bodies: the block list a client commits, and the
//! enumeration results of List Containers and List Blobs. Pure.

use std::fmt::Write;

use quick_xml::escape::escape;
use quick_xml::events::Event;

/// Where a block of a committed list is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSource {
    Committed,
    Uncommitted,
    Latest,
}

/// Parses `<BlockList><Latest>id</Latest>…</BlockList>`; at most `max_blocks` entries.
pub fn parse_block_list(
    body: &[u8],
    max_blocks: usize,
) -> Result<Vec<(BlockSource, String)>, String> {
    let mut reader = quick_xml::Reader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut current: Option<BlockSource> = None;
    let mut seen_root = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                depth += 1;
                let name = e.local_name();
                match (depth, name.as_ref()) {
                    (1, b"BlockList") => seen_root = true,
                    (2, b"Latest") => current = Some(BlockSource::Latest),
                    (2, b"Committed") => current = Some(BlockSource::Committed),
                    (2, b"Uncommitted") => current = Some(BlockSource::Uncommitted),
                    _ => {
                        return Err(format!(
                            "unexpected element <{}>",
                            String::from_utf8_lossy(name.as_ref())
                        ));
                    }
                }
            }
            Ok(Event::Empty(e)) => {
                if depth == 0 && e.local_name().as_ref() == b"BlockList" {
                    seen_root = true;
                } else {
                    return Err("an empty block entry".to_string());
                }
            }
            Ok(Event::Text(t)) => {
                let Some(source) = current else {
                    return Err("text outside a block entry".to_string());
                };
                let id = t.decode().map_err(|e| e.to_string())?;
                let id = quick_xml::escape::unescape(&id).map_err(|e| e.to_string())?;
                if out.len() >= max_blocks {
                    return Err(format!("more than {max_blocks} blocks"));
                }
                out.push((source, id.into_owned()));
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                current = None;
            }
            Ok(Event::Eof) => break,
            Ok(Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_)) => {}
            Ok(Event::CData(_) | Event::GeneralRef(_)) => {
                return Err("unexpected XML content".to_string());
            }
            Err(e) => return Err(e.to_string()),
        }
        buf.clear();
    }
    if !seen_root {
        return Err("the body is not a <BlockList>".to_string());
    }
    Ok(out)
}

/// One container in a List Containers result.
pub struct ContainerEntry<'a> {
    pub name: &'a str,
    pub last_modified: &'a str,
    pub etag: &'a str,
}

/// One blob in a List Blobs result.
pub struct BlobEntry<'a> {
    pub name: &'a str,
    pub created: &'a str,
    pub last_modified: &'a str,
    pub etag: &'a str,
    pub size: u64,
    pub content_type: &'a str,
    pub content_md5: &'a str,
}

/// What a List request asked for, echoed in its result.
pub struct ListEcho<'a> {
    pub service_endpoint: &'a str,
    pub prefix: &'a str,
    pub marker: &'a str,
    pub max_results: Option<usize>,
    pub next_marker: &'a str,
}

fn head(out: &mut String, echo: &ListEcho<'_>) {
    if !echo.prefix.is_empty() {
        let _ = write!(out, "<Prefix>{}</Prefix>", escape(echo.prefix));
    }
    if !echo.marker.is_empty() {
        let _ = write!(out, "<Marker>{}</Marker>", escape(echo.marker));
    }
    if let Some(m) = echo.max_results {
        let _ = write!(out, "<MaxResults>{m}</MaxResults>");
    }
}

fn tail(out: &mut String, echo: &ListEcho<'_>) {
    if echo.next_marker.is_empty() {
        out.push_str("<NextMarker />");
    } else {
        let _ = write!(out, "<NextMarker>{}</NextMarker>", escape(echo.next_marker));
    }
    out.push_str("</EnumerationResults>");
}

const DECL: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>";

pub fn list_containers(echo: &ListEcho<'_>, containers: &[ContainerEntry<'_>]) -> String {
    let mut out = String::from(DECL);
    let _ = write!(
        out,
        "<EnumerationResults ServiceEndpoint=\"{}\">",
        escape(echo.service_endpoint)
    );
    head(&mut out, echo);
    out.push_str("<Containers>");
    for c in containers {
        let _ = write!(
            out,
            "<Container><Name>{}</Name><Properties><Last-Modified>{}</Last-Modified><Etag>{}</Etag>\
             <LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>\
             <HasImmutabilityPolicy>false</HasImmutabilityPolicy><HasLegalHold>false</HasLegalHold>\
             </Properties></Container>",
            escape(c.name),
            c.last_modified,
            escape(c.etag)
        );
    }
    out.push_str("</Containers>");
    tail(&mut out, echo);
    out
}

/// A List Blobs result: blobs and, with a delimiter, the prefixes they group under.
pub fn list_blobs(
    echo: &ListEcho<'_>,
    container: &str,
    delimiter: &str,
    blobs: &[BlobEntry<'_>],
    prefixes: &[&str],
) -> String {
    let mut out = String::from(DECL);
    let _ = write!(
        out,
        "<EnumerationResults ServiceEndpoint=\"{}\" ContainerName=\"{}\">",
        escape(echo.service_endpoint),
        escape(container)
    );
    head(&mut out, echo);
    if !delimiter.is_empty() {
        let _ = write!(out, "<Delimiter>{}</Delimiter>", escape(delimiter));
    }
    out.push_str("<Blobs>");
    for b in blobs {
        let _ = write!(
            out,
            "<Blob><Name>{}</Name><Properties><Creation-Time>{}</Creation-Time>\
             <Last-Modified>{}</Last-Modified><Etag>{}</Etag><Content-Length>{}</Content-Length>\
             <Content-Type>{}</Content-Type><Content-Encoding /><Content-Language />",
            escape(b.name),
            b.created,
            b.last_modified,
            escape(b.etag),
            b.size,
            escape(b.content_type)
        );
        if b.content_md5.is_empty() {
            out.push_str("<Content-MD5 />");
        } else {
            let _ = write!(out, "<Content-MD5>{}</Content-MD5>", escape(b.content_md5));
        }
        out.push_str(
            "<Cache-Control /><Content-Disposition /><BlobType>BlockBlob</BlobType>\
             <AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred>\
             <LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>\
             <ServerEncrypted>true</ServerEncrypted></Properties></Blob>",
        );
    }
    for p in prefixes {
        let _ = write!(out, "<BlobPrefix><Name>{}</Name></BlobPrefix>", escape(*p));
    }
    out.push_str("</Blobs>");
    tail(&mut out, echo);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_lists_parse_in_order() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<BlockList><Latest>QUFB</Latest><Uncommitted>QkJC</Uncommitted><Committed>Q0ND</Committed></BlockList>"#;
        let list = parse_block_list(body, 10).unwrap();
        assert_eq!(
            list,
            vec![
                (BlockSource::Latest, "QUFB".to_string()),
                (BlockSource::Uncommitted, "QkJC".to_string()),
                (BlockSource::Committed, "Q0ND".to_string()),
            ]
        );
        assert_eq!(parse_block_list(b"<BlockList/>", 10).unwrap(), vec![]);
    }

    #[test]
    fn bad_block_lists_are_refused() {
        assert!(parse_block_list(b"<Nope/>", 10).is_err());
        assert!(parse_block_list(b"<BlockList><Other>x</Other></BlockList>", 10).is_err());
        assert!(
            parse_block_list(
                b"<BlockList><Latest>a</Latest><Latest>b</Latest></BlockList>",
                1
            )
            .is_err()
        );
        assert!(parse_block_list(b"not xml <<", 10).is_err());
        assert!(parse_block_list(b"", 10).is_err());
    }

    #[test]
    fn list_blobs_escapes_and_groups() {
        let echo = ListEcho {
            service_endpoint: "https://localhost:1/acct/",
            prefix: "a&b",
            marker: "",
            max_results: Some(2),
            next_marker: "n<1",
        };
        let blobs = [BlobEntry {
            name: "a&b/x",
            created: "c",
            last_modified: "m",
            etag: "0x1",
            size: 3,
            content_type: "text/plain",
            content_md5: "",
        }];
        let x = list_blobs(&echo, "c1", "/", &blobs, &["a&b/y/"]);
        assert!(x.contains(
            "<Prefix>a&amp;b</Prefix><MaxResults>2</MaxResults><Delimiter>/</Delimiter>"
        ));
        assert!(x.contains("<Name>a&amp;b/x</Name>"));
        assert!(x.contains("<BlobPrefix><Name>a&amp;b/y/</Name></BlobPrefix>"));
        assert!(x.ends_with("<NextMarker>n&lt;1</NextMarker></EnumerationResults>"));
    }
}

//! Link addresses: the nodes a service client attaches to, the device a C2D message
//! is for, the Event Hubs-compatible entity and the redirect to it.

use super::{AMQPS_PORT, MANAGEMENT_NODE};
use crate::encoding::{url_decode, url_encode};

/// `properties.to` of a C2D message for `device_id` (URL-encoded, as the SDKs send it).
pub fn c2d_to(device_id: &str) -> String {
    format!("/devices/{}/messages/devicebound", url_encode(device_id))
}

/// The hub's own address for a partition (answered with a redirect).
pub fn hub_events_address(consumer_group: &str, partition: &str) -> String {
    format!("messages/events/ConsumerGroups/{consumer_group}/Partitions/{partition}")
}

/// A partition receiver's source address on an Event Hubs-compatible entity.
pub fn partition_address(
    host: &str,
    entity: &str,
    consumer_group: &str,
    partition: &str,
) -> String {
    format!("amqps://{host}/{entity}/ConsumerGroups/{consumer_group}/Partitions/{partition}")
}

/// The audience (and token resource) of an Event Hubs entity: `sb://{host}/{entity}`.
pub fn event_hubs_audience(host: &str, entity: &str) -> String {
    format!("sb://{host}/{entity}")
}

/// Where a redirect sends a client: the Event Hubs-compatible host, port and entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectTarget {
    pub host: String,
    pub port: u16,
    pub entity: String,
}

/// Reads a redirect from its `info` values. The entity is the first path segment of
/// `address` (`amqps://{host}:{port}/{entity}/...`); the host is `hostname`, else the
/// address's; the port is `port`, else the address's, else 5671.
pub fn parse_redirect(
    hostname: Option<&str>,
    port: Option<i64>,
    address: &str,
) -> Option<RedirectTarget> {
    let rest = address.trim().split_once("://").map(|(_, r)| r)?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (addr_host, addr_port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
            (h, p.parse::<u16>().ok())
        }
        _ => (authority, None),
    };
    let entity = path.split('/').find(|s| !s.is_empty())?.to_string();
    let host = hostname.filter(|h| !h.is_empty()).unwrap_or(addr_host);
    if host.is_empty() {
        return None;
    }
    let port = port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .or(addr_port)
        .unwrap_or(AMQPS_PORT);
    Some(RedirectTarget {
        host: host.to_string(),
        port,
        entity,
    })
}

/// What a link address names on the hub (or its Event Hubs-compatible entity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAddress {
    Cbs,
    Management,
    /// `/messages/devicebound`: C2D send.
    DeviceBound,
    /// `/messages/servicebound/feedback`.
    Feedback,
    /// `/messages/servicebound/filenotifications`.
    FileNotifications,
    /// The hub's own `messages/events/...` address (answered with a redirect);
    /// `rest` is what followed `messages/events/`.
    HubEvents {
        rest: String,
    },
    /// `{entity}/ConsumerGroups/{group}/Partitions/{id}`.
    Partition {
        consumer_group: String,
        partition: String,
    },
    /// The entity itself, or `{entity}/Partitions/{id}`: only senders name these, and
    /// IoT Hub's built-in endpoint is read-only, so they are refused.
    Entity,
    Unknown(String),
}

/// Strips `amqps://host[:port]` and surrounding '/' from an address.
pub fn address_path(address: &str) -> &str {
    let rest = address.trim();
    let rest = match rest.split_once("://") {
        Some((_, r)) => r.split_once('/').map_or("", |(_, p)| p),
        None => rest,
    };
    rest.trim_matches('/')
}

impl NodeAddress {
    /// Classifies an address; `entity` is the Event Hubs-compatible name. Case-insensitive
    /// for the fixed parts; consumer group names keep their case.
    pub fn parse(address: &str, entity: &str) -> NodeAddress {
        let path = address_path(address);
        let lower = path.to_ascii_lowercase();
        let segments: Vec<&str> = path.split('/').collect();
        match lower.as_str() {
            "$cbs" => return NodeAddress::Cbs,
            "$management" => return NodeAddress::Management,
            "messages/devicebound" => return NodeAddress::DeviceBound,
            "messages/servicebound/feedback" => return NodeAddress::Feedback,
            "messages/servicebound/filenotifications"
            | "messages/servicebound/fileuploadnotifications" => {
                return NodeAddress::FileNotifications;
            }
            _ => {}
        }
        if let Some(rest) = lower.strip_prefix("messages/events")
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return NodeAddress::HubEvents {
                rest: path["messages/events".len()..]
                    .trim_start_matches('/')
                    .to_string(),
            };
        }
        if !segments.is_empty() && segments[0].eq_ignore_ascii_case(entity) {
            if segments.len() == 1
                || (segments.len() == 3 && segments[1].eq_ignore_ascii_case("Partitions"))
            {
                return NodeAddress::Entity;
            }
            if segments.len() == 2 && segments[1].eq_ignore_ascii_case(MANAGEMENT_NODE) {
                return NodeAddress::Management;
            }
            if segments.len() == 5
                && segments[1].eq_ignore_ascii_case("ConsumerGroups")
                && segments[3].eq_ignore_ascii_case("Partitions")
            {
                return NodeAddress::Partition {
                    consumer_group: segments[2].to_string(),
                    partition: segments[4].to_string(),
                };
            }
        }
        NodeAddress::Unknown(path.to_string())
    }
}

/// The device a C2D message is for, from its `to` (`/devices/{id}/messages/devicebound`,
/// id possibly URL-encoded).
pub fn c2d_device_id(to: &str) -> Option<String> {
    let path = address_path(to);
    let mut parts = path.split('/');
    if !parts.next()?.eq_ignore_ascii_case("devices") {
        return None;
    }
    let id = parts.next().filter(|s| !s.is_empty())?;
    let tail: Vec<&str> = parts.collect();
    let ok = tail.is_empty()
        || (tail.len() == 2
            && tail[0].eq_ignore_ascii_case("messages")
            && tail[1].eq_ignore_ascii_case("devicebound"));
    if !ok {
        return None;
    }
    Some(url_decode(id).unwrap_or_else(|_| id.to_string()))
}

/// The policy in a SASL PLAIN user name `{policy}@sas.root.{hub}`.
pub fn plain_policy(username: &str, hub_name: &str) -> Option<String> {
    let (policy, rest) = username.split_once('@')?;
    let hub = rest.strip_prefix("sas.root.")?;
    (!policy.is_empty() && hub.eq_ignore_ascii_case(hub_name)).then(|| policy.to_string())
}

/// The Event Hubs-compatible entity name of a hub.
pub fn event_hub_name(hub_name: &str) -> String {
    format!("iothub-ehub-{}", hub_name.to_ascii_lowercase())
}

/// `Endpoint=sb://{host}[:{port}]/;SharedAccessKeyName=..;SharedAccessKey=..;EntityPath=..`;
/// the port is written only when it is not AMQP's default 5671.
pub fn event_hub_connection_string(
    host: &str,
    port: u16,
    policy: &str,
    key: &str,
    entity: &str,
) -> String {
    let authority = if port == 5671 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    format!(
        "Endpoint=sb://{authority}/;SharedAccessKeyName={policy};SharedAccessKey={key};EntityPath={entity}"
    )
}

/// The address a redirect for the hub's `messages/events/{rest}` points at.
pub fn redirect_address(host: &str, port: u16, entity: &str, rest: &str) -> String {
    format!("amqps://{host}:{port}/{entity}/{rest}")
}

#[cfg(test)]
mod tests {
    use crate::amqp_model::*;

    const E: &str = "iothub-ehub-localhost";

    #[test]
    fn addresses_are_normalised() {
        assert_eq!(NodeAddress::parse("$cbs", E), NodeAddress::Cbs);
        assert_eq!(
            NodeAddress::parse("amqps://localhost/messages/devicebound", E),
            NodeAddress::DeviceBound
        );
        assert_eq!(
            NodeAddress::parse("/messages/deviceBound", E),
            NodeAddress::DeviceBound
        );
        assert_eq!(
            NodeAddress::parse("/messages/serviceBound/feedback", E),
            NodeAddress::Feedback
        );
        assert_eq!(
            NodeAddress::parse("amqps://h:5671/messages/servicebound/feedback/", E),
            NodeAddress::Feedback
        );
        assert_eq!(
            NodeAddress::parse("messages/events/ConsumerGroups/$Default/Partitions/0", E),
            NodeAddress::HubEvents {
                rest: "ConsumerGroups/$Default/Partitions/0".into()
            }
        );
        assert_eq!(
            NodeAddress::parse("messages/events/$management", E),
            NodeAddress::HubEvents {
                rest: "$management".into()
            }
        );
        assert_eq!(
            NodeAddress::parse(
                "amqps://localhost:5671/iothub-ehub-localhost/ConsumerGroups/Mine/Partitions/3",
                E
            ),
            NodeAddress::Partition {
                consumer_group: "Mine".into(),
                partition: "3".into()
            }
        );
        assert_eq!(
            NodeAddress::parse("sb://localhost/iothub-ehub-localhost", E),
            NodeAddress::Entity
        );
        assert_eq!(
            NodeAddress::parse("iothub-ehub-localhost/Partitions/2", E),
            NodeAddress::Entity
        );
        assert_eq!(
            NodeAddress::parse("iothub-ehub-localhost/$management", E),
            NodeAddress::Management
        );
        assert_eq!(
            NodeAddress::parse("messages/eventsx", E),
            NodeAddress::Unknown("messages/eventsx".into())
        );
    }
    #[test]
    fn c2d_to_names_the_device() {
        assert_eq!(
            c2d_device_id("/devices/d1/messages/devicebound").as_deref(),
            Some("d1")
        );
        assert_eq!(
            c2d_device_id("/devices/a%20b/messages/deviceBound").as_deref(),
            Some("a b")
        );
        assert_eq!(c2d_device_id("/devices/d1").as_deref(), Some("d1"));
        assert_eq!(c2d_device_id("/devices//messages/devicebound"), None);
        assert_eq!(c2d_device_id("/modules/x"), None);
        assert_eq!(c2d_device_id("/devices/d/other"), None);
    }
    #[test]
    fn plain_user_names() {
        assert_eq!(
            plain_policy("iothubowner@sas.root.localhost", "localhost").as_deref(),
            Some("iothubowner")
        );
        assert_eq!(
            plain_policy("iothubowner@sas.root.other", "localhost"),
            None
        );
        assert_eq!(plain_policy("dev1@sas.localhost", "localhost"), None);
        assert_eq!(plain_policy("@sas.root.localhost", "localhost"), None);
    }
    #[test]
    fn redirects_are_read_from_their_info() {
        // The real capture from a hub (a $management redirect).
        let t = parse_redirect(
            Some("iothub-ns-smartiot-1382746-675594b872.servicebus.windows.net"),
            Some(5671),
            "amqps://iothub-ns-smartiot-1382746-675594b872.servicebus.windows.net:5671/smartiot/$management",
        )
        .unwrap();
        assert_eq!(t.entity, "smartiot");
        assert_eq!(t.port, 5671);
        assert_eq!(
            t.host,
            "iothub-ns-smartiot-1382746-675594b872.servicebus.windows.net"
        );
        // What the local hub sends, and what only an address gives.
        let local = redirect_address(
            "localhost",
            45123,
            E,
            "ConsumerGroups/$Default/Partitions/0",
        );
        assert_eq!(
            parse_redirect(Some("localhost"), Some(45123), &local).unwrap(),
            RedirectTarget {
                host: "localhost".into(),
                port: 45123,
                entity: E.into()
            }
        );
        let bare = parse_redirect(None, None, "amqps://ns.example.org/eh/").unwrap();
        assert_eq!((bare.host.as_str(), bare.port), ("ns.example.org", 5671));
        assert_eq!(parse_redirect(None, None, "amqps://ns.example.org/"), None);
        assert_eq!(parse_redirect(None, None, "not an address"), None);
    }
    #[test]
    fn client_addresses() {
        assert_eq!(c2d_to("a b/c"), "/devices/a%20b%2Fc/messages/devicebound");
        assert_eq!(c2d_device_id(&c2d_to("a b/c")).as_deref(), Some("a b/c"));
        assert_eq!(
            NodeAddress::parse(&hub_events_address("$Default", "3"), E),
            NodeAddress::HubEvents {
                rest: "ConsumerGroups/$Default/Partitions/3".into()
            }
        );
        assert_eq!(
            NodeAddress::parse(&partition_address("localhost:5999", E, "cg", "2"), E),
            NodeAddress::Partition {
                consumer_group: "cg".into(),
                partition: "2".into()
            }
        );
        assert_eq!(
            NodeAddress::parse(node::DEVICEBOUND, E),
            NodeAddress::DeviceBound
        );
        assert_eq!(NodeAddress::parse(node::FEEDBACK, E), NodeAddress::Feedback);
        assert_eq!(
            NodeAddress::parse(node::FILE_NOTIFICATIONS, E),
            NodeAddress::FileNotifications
        );
        assert_eq!(
            event_hubs_audience("h:1", E),
            "sb://h:1/iothub-ehub-localhost"
        );
        for m in [
            AckMode::None,
            AckMode::Positive,
            AckMode::Negative,
            AckMode::Full,
        ] {
            assert_eq!(AckMode::parse(Some(m.as_str())), m);
        }
    }
    #[test]
    fn connection_string_and_redirect() {
        assert_eq!(
            event_hub_connection_string("localhost", 5671, "iothubowner", "k=", E),
            "Endpoint=sb://localhost/;SharedAccessKeyName=iothubowner;SharedAccessKey=k=;EntityPath=iothub-ehub-localhost"
        );
        assert!(
            event_hub_connection_string("localhost", 5999, "p", "k", E)
                .starts_with("Endpoint=sb://localhost:5999/;")
        );
        assert_eq!(
            redirect_address("localhost", 5671, E, "$management"),
            "amqps://localhost:5671/iothub-ehub-localhost/$management"
        );
        assert_eq!(condition_for("DeviceNotFound"), condition::NOT_FOUND);
        assert_eq!(condition_for("Whatever"), condition::INTERNAL);
        assert_eq!(event_hub_name("MyHub"), "iothub-ehub-myhub");
    }
}

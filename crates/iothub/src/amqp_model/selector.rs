//! Event Hubs selector filters: where a partition receiver starts.

use super::annotation;

/// Where a partition receiver starts, from its selector filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartPosition {
    /// The first retained event (`offset > -1`, or no filter).
    Start,
    /// Only events enqueued after the link is attached (`@latest`).
    End,
    /// By offset (we use the sequence number as the offset) or sequence number.
    Sequence { value: i64, inclusive: bool },
    /// By enqueued time, epoch milliseconds.
    EnqueuedTime { millis: i64, inclusive: bool },
}

/// Why a selector filter could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the selector filter \"{0}\" is not understood; use amqp.annotation.x-opt-offset, x-opt-sequence-number or x-opt-enqueued-time with > or >="
)]
pub struct FilterError(pub String);

/// Parses `amqp.annotation.x-opt-offset > '123'` and its variants (quoted or not,
/// `>=`, `x-opt-enqueuedtimeutc` as a synonym of `x-opt-enqueued-time`).
pub fn parse_selector(expr: &str) -> Result<StartPosition, FilterError> {
    let err = || FilterError(expr.to_string());
    let e = expr.trim();
    let (lhs, op_and_rhs) = e.split_at(e.find(['>', '=', '<']).ok_or_else(err)?);
    let (inclusive, rhs) = if let Some(r) = op_and_rhs.strip_prefix(">=") {
        (true, r)
    } else if let Some(r) = op_and_rhs.strip_prefix('>') {
        (false, r)
    } else if let Some(r) = op_and_rhs.strip_prefix('=') {
        (true, r)
    } else {
        return Err(err());
    };
    let name = lhs.trim().to_ascii_lowercase();
    let name = name.strip_prefix("amqp.annotation.").unwrap_or(&name);
    let value = rhs.trim().trim_matches(|c| c == '\'' || c == '"');
    match name {
        "x-opt-offset" => match value {
            "-1" => Ok(StartPosition::Start),
            "@latest" => Ok(StartPosition::End),
            v => Ok(StartPosition::Sequence {
                value: v.parse().map_err(|_| err())?,
                inclusive,
            }),
        },
        "x-opt-sequence-number" => Ok(StartPosition::Sequence {
            value: value.parse().map_err(|_| err())?,
            inclusive,
        }),
        "x-opt-enqueued-time" | "x-opt-enqueuedtimeutc" => Ok(StartPosition::EnqueuedTime {
            millis: value.parse().map_err(|_| err())?,
            inclusive,
        }),
        _ => Err(err()),
    }
}

/// The selector filter expression for a start position, as azure-eventhub writes it
/// (the inverse of [`parse_selector`]).
pub fn selector_expression(start: &StartPosition) -> String {
    let op = |inclusive: bool| if inclusive { ">=" } else { ">" };
    match start {
        StartPosition::Start => "amqp.annotation.x-opt-offset > '-1'".to_string(),
        StartPosition::End => "amqp.annotation.x-opt-offset > '@latest'".to_string(),
        StartPosition::Sequence { value, inclusive } => format!(
            "amqp.annotation.{} {} '{value}'",
            annotation::SEQUENCE_NUMBER,
            op(*inclusive)
        ),
        StartPosition::EnqueuedTime { millis, inclusive } => format!(
            "amqp.annotation.{} {} '{millis}'",
            annotation::ENQUEUED_TIME,
            op(*inclusive)
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::amqp_model::*;

    #[test]
    fn selectors() {
        use StartPosition::*;
        let p = |s| parse_selector(s).unwrap();
        assert_eq!(p("amqp.annotation.x-opt-offset > '-1'"), Start);
        assert_eq!(p("amqp.annotation.x-opt-offset > '@latest'"), End);
        assert_eq!(
            p("amqp.annotation.x-opt-offset >= '12'"),
            Sequence {
                value: 12,
                inclusive: true
            }
        );
        assert_eq!(
            p("amqp.annotation.x-opt-sequence-number > 5"),
            Sequence {
                value: 5,
                inclusive: false
            }
        );
        assert_eq!(
            p("amqp.annotation.x-opt-enqueued-time > '1700000000000'"),
            EnqueuedTime {
                millis: 1_700_000_000_000,
                inclusive: false
            }
        );
        assert_eq!(
            p("amqp.annotation.x-opt-enqueuedtimeutc > 1700000000000"),
            EnqueuedTime {
                millis: 1_700_000_000_000,
                inclusive: false
            }
        );
        assert!(parse_selector("amqp.annotation.x-opt-offset < '1'").is_err());
        assert!(parse_selector("amqp.annotation.other > '1'").is_err());
        assert!(parse_selector("x-opt-offset > 'abc'").is_err());
        assert!(parse_selector("").is_err());
    }
    #[test]
    fn selector_expressions_round_trip() {
        use StartPosition::*;
        for start in [
            Start,
            End,
            Sequence {
                value: 41,
                inclusive: false,
            },
            Sequence {
                value: 7,
                inclusive: true,
            },
            EnqueuedTime {
                millis: 1_700_000_000_123,
                inclusive: false,
            },
        ] {
            let expr = selector_expression(&start);
            assert_eq!(parse_selector(&expr).unwrap(), start, "{expr}");
        }
        assert_eq!(
            selector_expression(&Sequence {
                value: 41,
                inclusive: false
            }),
            "amqp.annotation.x-opt-sequence-number > '41'"
        );
    }
}

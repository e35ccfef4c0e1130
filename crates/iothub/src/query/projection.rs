//! SELECT: the result rows of a query, one per matching twin or one per group.

use super::eval::{lookup, lookup_entry};
use super::{Aggregate, Projection, Query, SelectItem, Selected};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

impl Query {
    /// The result row for one matching twin of a query that does not aggregate: the twin
    /// itself for `SELECT *`, else an object with a key per selected property the twin
    /// defines (an undefined property is left out, as Azure leaves it out).
    pub fn project(&self, twin: &Value) -> Value {
        let Projection::Items(items) = &self.projection else {
            return twin.clone();
        };
        let mut row = Map::new();
        for item in items {
            let Selected::Path(path) = &item.value else {
                continue;
            };
            if let Some((key, value)) = lookup_entry(twin, path) {
                let name = item.alias.as_deref().unwrap_or(key);
                row.insert(name.to_string(), value.clone());
            }
        }
        Value::Object(row)
    }

    /// The result rows of an aggregate query ([`Query::is_aggregate`]) over its matching
    /// twins: one row per distinct value of the GROUP BY property, in the order the values
    /// first occur, or exactly one row without GROUP BY (`COUNT()` of nothing is 0). Twins
    /// without the grouped property form one group whose row leaves that key out.
    pub fn aggregate(&self, twins: &[Value]) -> Vec<Value> {
        let Projection::Items(items) = &self.projection else {
            return Vec::new();
        };
        let Some(group_by) = &self.group_by else {
            let all: Vec<&Value> = twins.iter().collect();
            return vec![row(items, None, &all)];
        };
        // Groups keyed by the value's JSON text, so any JSON value can key a group.
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut groups: Vec<(Option<&Value>, Vec<&Value>)> = Vec::new();
        for twin in twins {
            let value = lookup(twin, group_by);
            let key = value.map_or_else(String::new, Value::to_string);
            let at = *index.entry(key).or_insert_with(|| {
                groups.push((value, Vec::new()));
                groups.len() - 1
            });
            groups[at].1.push(twin);
        }
        groups
            .iter()
            .map(|(value, members)| row(items, *value, members))
            .collect()
    }
}

/// One aggregated row: the grouped value under each path item's name, each aggregate
/// under its alias.
fn row(items: &[SelectItem], group_value: Option<&Value>, members: &[&Value]) -> Value {
    let mut row = Map::new();
    for item in items {
        let entry = match &item.value {
            Selected::Path(path) => {
                group_value.map(|v| (path_name(item, path, members), v.clone()))
            }
            Selected::Aggregate(aggregate) => aggregate
                .over(members)
                .map(|v| (item.name().to_string(), v)),
        };
        if let Some((name, value)) = entry {
            row.insert(name, value);
        }
    }
    Value::Object(row)
}

/// A grouped path's key in the row: the alias, else the twins' own spelling of its last
/// segment, as in a projection row.
fn path_name(item: &SelectItem, path: &[String], members: &[&Value]) -> String {
    if let Some(alias) = &item.alias {
        return alias.clone();
    }
    members
        .first()
        .and_then(|t| lookup_entry(t, path))
        .map_or_else(|| item.name().to_string(), |(key, _)| key.to_string())
}

impl Aggregate {
    /// The aggregate over a group; SUM of no numbers is 0, AVG, MIN and MAX of no numbers
    /// are undefined (None). Values that are not numbers are skipped.
    fn over(&self, members: &[&Value]) -> Option<Value> {
        let numbers = |path: &[String]| -> Vec<&Number> {
            members
                .iter()
                .filter_map(|t| lookup(t, path)?.as_number())
                .collect()
        };
        match self {
            Aggregate::Count => Some(Value::from(members.len())),
            Aggregate::Sum(path) => Some(sum(&numbers(path))),
            Aggregate::Avg(path) => {
                let numbers = numbers(path);
                let total: f64 = numbers.iter().filter_map(|n| n.as_f64()).sum();
                (!numbers.is_empty())
                    .then(|| Number::from_f64(total / numbers.len() as f64).map(Value::Number))
                    .flatten()
            }
            Aggregate::Min(path) => extreme(&numbers(path), std::cmp::Ordering::Less),
            Aggregate::Max(path) => extreme(&numbers(path), std::cmp::Ordering::Greater),
        }
    }
}

/// Whole numbers add exactly while they fit an i64; otherwise the sum is a float.
fn sum(numbers: &[&Number]) -> Value {
    let exact = numbers
        .iter()
        .try_fold(0i64, |total, n| total.checked_add(n.as_i64()?));
    match exact {
        Some(total) => Value::from(total),
        None => {
            let total: f64 = numbers.iter().filter_map(|n| n.as_f64()).sum();
            Number::from_f64(total).map_or(Value::Null, Value::Number)
        }
    }
}

/// The smallest (`Less`) or largest (`Greater`) number, as it was written in the twin.
fn extreme(numbers: &[&Number], want: std::cmp::Ordering) -> Option<Value> {
    let mut best: Option<&Number> = None;
    for &n in numbers {
        let better = best.is_none_or(|b| {
            n.as_f64()
                .zip(b.as_f64())
                .and_then(|(x, y)| x.partial_cmp(&y))
                == Some(want)
        });
        if better {
            best = Some(n);
        }
    }
    best.map(|n| Value::Number(n.clone()))
}

impl SelectItem {
    /// The key the item gets in a result as written in the query: the alias, else the
    /// path's last segment. (A result names a path by the key found in the twin, whose
    /// case may differ in the first segment.)
    pub fn name(&self) -> &str {
        match (&self.alias, &self.value) {
            (Some(alias), _) => alias,
            (None, Selected::Path(path)) => path.last().map_or("", String::as_str),
            // The parser gives every aggregate an alias.
            (None, Selected::Aggregate(_)) => "",
        }
    }
}

//! The IoT Hub query language as Azure serves it for twins (protocol reference §5.6):
//!
//! ```text
//! SELECT [TOP n] * | item [AS alias], ...
//!   FROM devices | devices.modules
//!   [WHERE condition]
//!   [GROUP BY property.path]
//! ```
//!
//! An item is a property path or an aggregate (`COUNT()`, `SUM`, `AVG`, `MIN`, `MAX` of a
//! path). A condition compares paths with constants (`=`, `!=`, `<>`, `<`, `>`, `<=`, `>=`),
//! tests lists (`IN`, `NIN`, `NOT IN`), calls the twin functions (`IS_DEFINED`, `IS_NULL`,
//! `IS_STRING`, `IS_NUMBER`, `IS_BOOL`, `IS_OBJECT`, `IS_ARRAY`, `IS_PRIMITIVE`,
//! `STARTSWITH`, `ENDSWITH`, `CONTAINS`, `ARRAY_CONTAINS`) and joins them with `AND`, `OR`,
//! `NOT` and parentheses. docs/sdk-behaviour.md lists the sources for each piece.
//!
//! Evaluation is three-valued as in the hub's SQL dialect: a comparison with an undefined path,
//! or an ordering (`<`, `>`, ...) between different JSON types, is *undefined*; `NOT` keeps it
//! undefined and only a condition that is true selects a twin. Choices of ours: `=`/`!=`
//! between different JSON types are plainly false/true; the first path segment (`deviceId`,
//! `status`, ...) matches case-insensitively when no exact key exists, the rest is exact.
//! Error positions are 1-based character columns.
//!
//! Nothing a client sends can exhaust the stack: a query is at most [`MAX_QUERY_CHARS`]
//! long (Azure's documented limit), `AND`/`OR` chains and lists are flat and handled in
//! loops, function arguments are paths and constants (never conditions), and only
//! parentheses and `NOT` nest, at most [`MAX_NESTING`] deep.

use serde_json::Value;

mod eval;
mod lexer;
mod parser;
mod projection;

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// `TOP n`: at most this many results in all.
    pub top: Option<usize>,
    pub projection: Projection,
    pub source: Source,
    pub condition: Option<Condition>,
    /// `GROUP BY path`: one result per distinct value of the path.
    pub group_by: Option<Vec<String>>,
}

/// Which twins a query reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Source {
    /// `FROM devices`: device twins.
    #[default]
    Devices,
    /// `FROM devices.modules`: module twins.
    Modules,
}

/// What the query returns per match (or per group, with aggregates).
#[derive(Clone, Debug, PartialEq)]
pub enum Projection {
    /// `SELECT *`: the whole twin.
    All,
    /// `SELECT a, b.c AS d, COUNT() AS n`: an object per result with one key per item.
    Items(Vec<SelectItem>),
}

/// One entry of a SELECT list.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectItem {
    pub value: Selected,
    /// The name given with AS; without one a path is named by its last segment.
    pub alias: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Selected {
    Path(Vec<String>),
    Aggregate(Aggregate),
}

/// The aggregates of Azure's SELECT grammar.
#[derive(Clone, Debug, PartialEq)]
pub enum Aggregate {
    Count,
    Sum(Vec<String>),
    Avg(Vec<String>),
    Min(Vec<String>),
    Max(Vec<String>),
}

/// A WHERE condition; paths are the dotted segments (`["tags", "floor"]`).
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    Compare {
        path: Vec<String>,
        op: CompareOp,
        value: Value,
    },
    /// `IN [...]`, or `NIN [...]` / `NOT IN [...]` when negated.
    In {
        path: Vec<String>,
        values: Vec<Value>,
        negated: bool,
    },
    /// `IS_DEFINED(path)`, `IS_STRING(path)`, ...
    Is {
        check: TypeCheck,
        path: Vec<String>,
    },
    /// `STARTSWITH(path, 'text')`, `ENDSWITH`, `CONTAINS`.
    Text {
        op: TextMatch,
        path: Vec<String>,
        text: String,
    },
    /// `ARRAY_CONTAINS(path, constant)`.
    ArrayContains {
        path: Vec<String>,
        value: Value,
    },
    Not(Box<Condition>),
    /// Two or more conditions that must all hold.
    And(Vec<Condition>),
    /// Two or more conditions of which one must hold.
    Or(Vec<Condition>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl CompareOp {
    /// The operator with its operands swapped (`5 < x` is `x > 5`).
    fn flipped(self) -> CompareOp {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Le => CompareOp::Ge,
            CompareOp::Ge => CompareOp::Le,
            other => other,
        }
    }
}

/// The type-checking functions; each is true or false, never undefined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeCheck {
    Defined,
    Null,
    String,
    Number,
    Bool,
    Object,
    Array,
    Primitive,
}

/// The string functions; undefined unless the property is a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextMatch {
    StartsWith,
    EndsWith,
    Contains,
}

/// What is wrong with a query; the position is added by [`QueryError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryErrorKind {
    #[error("the query is empty")]
    Empty,
    #[error("the character '{}' is not allowed here", .0.escape_debug())]
    UnexpectedChar(char),
    #[error("a string is not closed")]
    UnterminatedString,
    #[error("{} is not a valid escape in a string; use \\' \\\" \\\\ or \\uXXXX", .0.escape_debug())]
    BadEscape(String),
    #[error("{} is not a valid number", .0.escape_debug())]
    BadNumber(String),
    #[error("expected {expected} but found {found}")]
    Expected {
        expected: &'static str,
        found: String,
    },
    #[error("only FROM devices and FROM devices.modules are supported, not {}", .0.escape_debug())]
    UnsupportedSource(String),
    #[error("a comparison needs a property path on one side and a constant on the other")]
    BadComparison,
    #[error(
        "{} is not a function of the twin query language (IS_DEFINED, IS_NULL, IS_STRING, IS_NUMBER, IS_BOOL, IS_OBJECT, IS_ARRAY, IS_PRIMITIVE, STARTSWITH, ENDSWITH, CONTAINS, ARRAY_CONTAINS)",
        .0.escape_debug()
    )]
    UnknownFunction(String),
    #[error("{0} is not part of the IoT Hub query language")]
    Unsupported(&'static str),
    #[error("TOP needs a whole number of results, not {}", .0.escape_debug())]
    BadTop(String),
    #[error("GROUP BY is supported only FROM devices")]
    GroupByModules,
    #[error("GROUP BY needs a list of the grouped property and aggregates, not SELECT *")]
    GroupBySelectAll,
    #[error(
        "{} is selected but is neither the GROUP BY property nor an aggregate",
        .0.escape_debug()
    )]
    NotGrouped(String),
    #[error("a query without GROUP BY cannot select both aggregates and properties")]
    MixedAggregates,
    #[error("two selected values are both named {}; rename one with AS", .0.escape_debug())]
    DuplicateName(String),
    #[error("the condition nests parentheses or NOT more than {MAX_NESTING} deep")]
    TooDeep,
    #[error("the query is longer than the {MAX_QUERY_CHARS} characters allowed; shorten it")]
    TooLong,
}

/// A query error: one sentence ending with the 1-based character position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at position {position}")]
pub struct QueryError {
    pub position: usize,
    pub kind: QueryErrorKind,
}

/// Nesting limit for parentheses and NOT, so garbage cannot overflow the stack.
pub const MAX_NESTING: usize = 64;

/// Longest query Azure accepts ("Query expressions can have a maximum length of 8192
/// characters").
pub const MAX_QUERY_CHARS: usize = 8192;

fn error(position: usize, kind: QueryErrorKind) -> QueryError {
    QueryError { position, kind }
}

/// Parses a query; total on any input.
pub fn parse_query(sql: &str) -> Result<Query, QueryError> {
    if sql.chars().nth(MAX_QUERY_CHARS).is_some() {
        return Err(error(MAX_QUERY_CHARS + 1, QueryErrorKind::TooLong));
    }
    parser::parse(lexer::tokenize(sql)?)
}

impl Query {
    /// Does the twin (full service view: deviceId, status, tags, properties, ...) match WHERE?
    pub fn matches(&self, twin_json: &Value) -> bool {
        self.condition
            .as_ref()
            .is_none_or(|c| c.eval(twin_json) == eval::Truth::True)
    }

    /// Does the query answer with aggregated rows ([`Query::aggregate`]) rather than one
    /// row per matching twin ([`Query::project`])?
    pub fn is_aggregate(&self) -> bool {
        self.group_by.is_some()
            || matches!(&self.projection, Projection::Items(items)
                if items.iter().any(|i| matches!(i.value, Selected::Aggregate(_))))
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_select;
#[cfg(test)]
mod tests_smoke;
#[cfg(test)]
mod tests_where;

//! The subset of the IoT Hub query language the local hub answers (protocol reference §5.6):
//! `SELECT * FROM devices [WHERE cond]` and `SELECT COUNT() AS n FROM devices [WHERE cond]`,
//! and the same over module twins with `FROM devices.modules`.
//!
//! Evaluation is three-valued as in the hub's SQL dialect: a comparison with an undefined path,
//! or an ordering (`<`, `>`, ...) between different JSON types, is *undefined*; `NOT` keeps it
//! undefined and only a condition that is true selects a twin. Choices of ours: `=`/`!=`
//! between different JSON types are plainly false/true; the first path segment (`deviceId`,
//! `status`, ...) matches case-insensitively when no exact key exists, the rest is exact.
//! Error positions are 1-based character columns.
//!
//! Nothing a client sends can exhaust the stack: a query is at most [`MAX_QUERY_CHARS`]
//! long (Azure's documented limit), `AND`/`OR` chains are flat lists that parse, evaluate
//! and drop in loops, and only parentheses and `NOT` nest, at most [`MAX_NESTING`] deep.

use lexer::{Token, tokenize};
use serde_json::Value;

mod lexer;

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub projection: Projection,
    pub source: Source,
    pub condition: Option<Condition>,
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

/// What the query returns per match (or in total, for COUNT).
#[derive(Clone, Debug, PartialEq)]
pub enum Projection {
    All,
    Count { alias: String },
}

/// A WHERE condition; paths are the dotted segments (`["tags", "floor"]`).
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    Compare {
        path: Vec<String>,
        op: CompareOp,
        value: Value,
    },
    In {
        path: Vec<String>,
        values: Vec<Value>,
        negated: bool,
    },
    IsDefined(Vec<String>),
    IsNull(Vec<String>),
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

/// What is wrong with a query; the position is added by [`QueryError`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryErrorKind {
    #[error("the query is empty")]
    Empty,
    #[error("the character '{}' is not allowed here", .0.escape_debug())]
    UnexpectedChar(char),
    #[error("a string is not closed")]
    UnterminatedString,
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

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    nesting: usize,
}

/// Either side of a comparison.
enum Operand {
    Path(Vec<String>),
    Literal(Value),
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)].0
    }

    fn position(&self) -> usize {
        self.tokens[self.at.min(self.tokens.len() - 1)].1
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        token
    }

    fn expected(&self, expected: &'static str) -> QueryError {
        error(
            self.position(),
            QueryErrorKind::Expected {
                expected,
                found: self.peek().describe(),
            },
        )
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.peek().is_keyword(keyword) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, keyword: &str, expected: &'static str) -> Result<(), QueryError> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(self.expected(expected))
        }
    }

    fn expect(&mut self, token: Token, expected: &'static str) -> Result<(), QueryError> {
        if *self.peek() == token {
            self.bump();
            Ok(())
        } else {
            Err(self.expected(expected))
        }
    }

    fn query(&mut self) -> Result<Query, QueryError> {
        if *self.peek() == Token::End {
            return Err(error(1, QueryErrorKind::Empty));
        }
        self.expect_keyword("SELECT", "SELECT")?;
        let projection = if *self.peek() == Token::Star {
            self.bump();
            Projection::All
        } else if self.eat_keyword("COUNT") {
            self.expect(Token::Open, "'(' after COUNT")?;
            self.expect(Token::Close, "')' after COUNT(")?;
            self.expect_keyword("AS", "AS and a name after COUNT()")?;
            let Token::Word(alias) = self.peek().clone() else {
                return Err(self.expected("a name after AS"));
            };
            self.bump();
            Projection::Count { alias }
        } else {
            return Err(self.expected("'*' or COUNT() after SELECT"));
        };
        self.expect_keyword("FROM", "FROM")?;
        let source_position = self.position();
        let source = self.path("devices after FROM")?;
        let source = match source.join(".").to_ascii_lowercase().as_str() {
            "devices" => Source::Devices,
            "devices.modules" => Source::Modules,
            _ => {
                return Err(error(
                    source_position,
                    QueryErrorKind::UnsupportedSource(source.join(".")),
                ));
            }
        };
        let condition = if self.eat_keyword("WHERE") {
            Some(self.or()?)
        } else {
            None
        };
        if *self.peek() != Token::End {
            return Err(self.expected("WHERE or the end of the query"));
        }
        Ok(Query {
            projection,
            source,
            condition,
        })
    }

    fn path(&mut self, expected: &'static str) -> Result<Vec<String>, QueryError> {
        let mut segments = Vec::new();
        loop {
            match self.peek() {
                Token::Word(w) => {
                    segments.push(w.clone());
                    self.bump();
                }
                _ => return Err(self.expected(expected)),
            }
            if *self.peek() != Token::Dot {
                return Ok(segments);
            }
            self.bump();
        }
    }

    fn or(&mut self) -> Result<Condition, QueryError> {
        let mut terms = vec![self.and()?];
        while self.eat_keyword("OR") {
            terms.push(self.and()?);
        }
        Ok(chain(terms, Condition::Or))
    }

    fn and(&mut self) -> Result<Condition, QueryError> {
        let mut terms = vec![self.not()?];
        while self.eat_keyword("AND") {
            terms.push(self.not()?);
        }
        Ok(chain(terms, Condition::And))
    }

    fn nest(&mut self) -> Result<(), QueryError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            Err(error(self.position(), QueryErrorKind::TooDeep))
        } else {
            Ok(())
        }
    }

    fn not(&mut self) -> Result<Condition, QueryError> {
        if self.eat_keyword("NOT") {
            self.nest()?;
            let inner = self.not()?;
            self.nesting -= 1;
            return Ok(Condition::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition, QueryError> {
        if *self.peek() == Token::Open {
            self.bump();
            self.nest()?;
            let inner = self.or()?;
            self.nesting -= 1;
            self.expect(Token::Close, "')'")?;
            return Ok(inner);
        }
        for (name, is_null) in [("IS_DEFINED", false), ("IS_NULL", true)] {
            if self.eat_keyword(name) {
                self.expect(Token::Open, "'(' after the function name")?;
                let path = self.path("a property path")?;
                self.expect(Token::Close, "')'")?;
                return Ok(if is_null {
                    Condition::IsNull(path)
                } else {
                    Condition::IsDefined(path)
                });
            }
        }
        let left_position = self.position();
        let left = self.operand()?;
        let negated = self.peek().is_keyword("NOT");
        if negated {
            self.bump();
        }
        if negated || self.peek().is_keyword("IN") {
            self.expect_keyword("IN", "IN after NOT")?;
            let Operand::Path(path) = left else {
                return Err(error(left_position, QueryErrorKind::BadComparison));
            };
            let values = self.list()?;
            return Ok(Condition::In {
                path,
                values,
                negated,
            });
        }
        let Token::Op(op) = self.peek().clone() else {
            return Err(self.expected("a comparison operator"));
        };
        self.bump();
        let right = self.operand()?;
        match (left, right) {
            (Operand::Path(path), Operand::Literal(value)) => {
                Ok(Condition::Compare { path, op, value })
            }
            (Operand::Literal(value), Operand::Path(path)) => Ok(Condition::Compare {
                path,
                op: op.flipped(),
                value,
            }),
            _ => Err(error(left_position, QueryErrorKind::BadComparison)),
        }
    }

    fn operand(&mut self) -> Result<Operand, QueryError> {
        if let Some(value) = self.literal() {
            return Ok(Operand::Literal(value));
        }
        match self.peek() {
            Token::Word(_) => Ok(Operand::Path(self.path("a property path")?)),
            _ => Err(self.expected("a property path or a constant")),
        }
    }

    fn literal(&mut self) -> Option<Value> {
        let value = match self.peek() {
            Token::Str(s) => Value::String(s.clone()),
            Token::Num(n, _) => Value::Number(n.clone()),
            t if t.is_keyword("true") => Value::Bool(true),
            t if t.is_keyword("false") => Value::Bool(false),
            t if t.is_keyword("null") => Value::Null,
            _ => return None,
        };
        self.bump();
        Some(value)
    }

    /// `[lit, ...]` or `(lit, ...)`.
    fn list(&mut self) -> Result<Vec<Value>, QueryError> {
        let close = match self.peek() {
            Token::OpenBracket => Token::CloseBracket,
            Token::Open => Token::Close,
            _ => return Err(self.expected("'[' after IN")),
        };
        self.bump();
        let mut values = Vec::new();
        if *self.peek() == close {
            self.bump();
            return Ok(values);
        }
        loop {
            match self.literal() {
                Some(value) => values.push(value),
                None => return Err(self.expected("a constant in the IN list")),
            }
            let next = self.peek().clone();
            if next != Token::Comma && next != close {
                return Err(self.expected("',' or the end of the IN list"));
            }
            self.bump();
            if next == close {
                return Ok(values);
            }
        }
    }
}

/// One term alone, or the flat chain of several.
fn chain(mut terms: Vec<Condition>, join: fn(Vec<Condition>) -> Condition) -> Condition {
    if terms.len() == 1 {
        terms.remove(0)
    } else {
        join(terms)
    }
}

/// Parses a query; total on any input.
pub fn parse_query(sql: &str) -> Result<Query, QueryError> {
    if sql.chars().nth(MAX_QUERY_CHARS).is_some() {
        return Err(error(MAX_QUERY_CHARS + 1, QueryErrorKind::TooLong));
    }
    let tokens = tokenize(sql)?;
    Parser {
        tokens,
        at: 0,
        nesting: 0,
    }
    .query()
}

/// Three-valued truth of the query dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Undefined,
}

impl From<bool> for Truth {
    fn from(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }
}

fn lookup<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let object = root.as_object()?;
    let mut current = object.get(first).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(first))
            .map(|(_, v)| v)
    })?;
    for segment in rest {
        current = current.as_object()?.get(segment)?;
    }
    Some(current)
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn ordering(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn compare(op: CompareOp, actual: Option<&Value>, literal: &Value) -> Truth {
    let Some(actual) = actual else {
        return Truth::Undefined;
    };
    use std::cmp::Ordering::{Greater, Less};
    match op {
        CompareOp::Eq => values_equal(actual, literal).into(),
        CompareOp::Ne => (!values_equal(actual, literal)).into(),
        _ => match ordering(actual, literal) {
            None => Truth::Undefined,
            Some(o) => match op {
                CompareOp::Lt => (o == Less).into(),
                CompareOp::Gt => (o == Greater).into(),
                CompareOp::Le => (o != Greater).into(),
                _ => (o != Less).into(),
            },
        },
    }
}

impl Condition {
    fn eval(&self, twin: &Value) -> Truth {
        match self {
            Condition::Compare { path, op, value } => compare(*op, lookup(twin, path), value),
            Condition::In {
                path,
                values,
                negated,
            } => match lookup(twin, path) {
                None => Truth::Undefined,
                Some(actual) => (values.iter().any(|v| values_equal(actual, v)) != *negated).into(),
            },
            Condition::IsDefined(path) => lookup(twin, path).is_some().into(),
            Condition::IsNull(path) => lookup(twin, path).is_some_and(Value::is_null).into(),
            Condition::Not(inner) => match inner.eval(twin) {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Undefined => Truth::Undefined,
            },
            Condition::And(terms) => all_or_any(terms, twin, Truth::False, Truth::True),
            Condition::Or(terms) => all_or_any(terms, twin, Truth::True, Truth::False),
        }
    }
}

/// AND (`decisive` False, `otherwise` True) or OR (the other way round) over a chain:
/// the first decisive term decides; else any undefined term leaves the whole undefined.
fn all_or_any(terms: &[Condition], twin: &Value, decisive: Truth, otherwise: Truth) -> Truth {
    let mut result = otherwise;
    for term in terms {
        match term.eval(twin) {
            t if t == decisive => return decisive,
            Truth::Undefined => result = Truth::Undefined,
            _ => {}
        }
    }
    result
}

impl Query {
    /// Does the twin (full service view: deviceId, status, tags, properties, ...) match WHERE?
    pub fn matches(&self, twin_json: &Value) -> bool {
        self.condition
            .as_ref()
            .is_none_or(|c| c.eval(twin_json) == Truth::True)
    }
}

#[cfg(test)]
mod tests;

//! Tokens to a [`Query`]: recursive descent where only parentheses and NOT recurse, each
//! counted against [`MAX_NESTING`]; lists and AND/OR chains are loops.

use super::lexer::Token;
use super::{
    Aggregate, CompareOp, Condition, MAX_NESTING, Projection, Query, QueryError, QueryErrorKind,
    SelectItem, Selected, Source, TextMatch, TypeCheck, error,
};
use serde_json::Value;

pub(super) fn parse(tokens: Vec<(Token, usize)>) -> Result<Query, QueryError> {
    Parser {
        tokens,
        at: 0,
        nesting: 0,
    }
    .query()
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

/// What a function call in WHERE becomes, by name (case-insensitive).
enum Function {
    Is(TypeCheck),
    Text(TextMatch),
    ArrayContains,
}

fn function(name: &str) -> Option<Function> {
    let f = match name.to_ascii_uppercase().as_str() {
        "IS_DEFINED" => Function::Is(TypeCheck::Defined),
        "IS_NULL" => Function::Is(TypeCheck::Null),
        "IS_STRING" => Function::Is(TypeCheck::String),
        "IS_NUMBER" => Function::Is(TypeCheck::Number),
        "IS_BOOL" => Function::Is(TypeCheck::Bool),
        "IS_OBJECT" => Function::Is(TypeCheck::Object),
        "IS_ARRAY" => Function::Is(TypeCheck::Array),
        "IS_PRIMITIVE" => Function::Is(TypeCheck::Primitive),
        "STARTSWITH" => Function::Text(TextMatch::StartsWith),
        "ENDSWITH" => Function::Text(TextMatch::EndsWith),
        "CONTAINS" => Function::Text(TextMatch::Contains),
        "ARRAY_CONTAINS" => Function::ArrayContains,
        _ => return None,
    };
    Some(f)
}

impl Parser {
    fn peek(&self) -> &Token {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.tokens[(self.at + ahead).min(self.tokens.len() - 1)].0
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
        let top = self.top()?;
        let projection_position = self.position();
        let projection = self.projection()?;
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
        let group_position = self.position();
        let group_by = if self.eat_keyword("GROUP") {
            self.expect_keyword("BY", "BY after GROUP")?;
            Some(self.path("a property path after GROUP BY")?)
        } else {
            None
        };
        // Azure's grammar has no ORDER BY: say so rather than "expected the end".
        if self.peek().is_keyword("ORDER") {
            return Err(error(
                self.position(),
                QueryErrorKind::Unsupported("ORDER BY"),
            ));
        }
        if *self.peek() != Token::End {
            return Err(self.expected("WHERE, GROUP BY or the end of the query"));
        }
        let query = Query {
            top,
            projection,
            source,
            condition,
            group_by,
        };
        check_projection(&query, projection_position, group_position)?;
        Ok(query)
    }

    fn top(&mut self) -> Result<Option<usize>, QueryError> {
        if !self.eat_keyword("TOP") {
            return Ok(None);
        }
        let position = self.position();
        match self.bump() {
            Token::Num(n, text) => match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(n) => Ok(Some(n)),
                None => Err(error(position, QueryErrorKind::BadTop(text))),
            },
            other => Err(error(position, QueryErrorKind::BadTop(other.describe()))),
        }
    }

    fn projection(&mut self) -> Result<Projection, QueryError> {
        if *self.peek() == Token::Star {
            self.bump();
            return Ok(Projection::All);
        }
        let mut items = Vec::new();
        loop {
            items.push(self.select_item()?);
            if *self.peek() != Token::Comma {
                return Ok(Projection::Items(items));
            }
            self.bump();
        }
    }

    fn select_item(&mut self) -> Result<SelectItem, QueryError> {
        let aggregate = match self.peek() {
            Token::Word(w) if *self.peek_at(1) == Token::Open => Some(w.to_ascii_uppercase()),
            _ => None,
        };
        let value = match aggregate.as_deref() {
            Some("COUNT") => {
                self.bump();
                self.bump();
                self.expect(Token::Close, "')' after COUNT(")?;
                Selected::Aggregate(Aggregate::Count)
            }
            Some(name @ ("SUM" | "AVG" | "MIN" | "MAX")) => {
                let wrap = match name {
                    "SUM" => Aggregate::Sum,
                    "AVG" => Aggregate::Avg,
                    "MIN" => Aggregate::Min,
                    _ => Aggregate::Max,
                };
                self.bump();
                self.bump();
                let path = self.path("a property path in the aggregate")?;
                self.expect(Token::Close, "')' after the aggregate's property")?;
                Selected::Aggregate(wrap(path))
            }
            Some(name) => {
                let name = name.to_string();
                return Err(error(
                    self.position(),
                    QueryErrorKind::UnknownFunction(name),
                ));
            }
            // `SELECT FROM devices` lacks its list; FROM is no property name there.
            None if self.peek().is_keyword("FROM") => {
                return Err(self.expected("'*', a property path or COUNT() after SELECT"));
            }
            None => Selected::Path(self.path("'*', a property path or COUNT() after SELECT")?),
        };
        let alias = if self.eat_keyword("AS") {
            let alias = match self.peek() {
                Token::Word(w) if !w.eq_ignore_ascii_case("FROM") => w.clone(),
                _ => return Err(self.expected("a name after AS")),
            };
            self.bump();
            Some(alias)
        } else if matches!(value, Selected::Aggregate(_)) {
            // Without a name there is no key to put the aggregate under.
            return Err(self.expected("AS and a name after the aggregate"));
        } else {
            None
        };
        Ok(SelectItem { value, alias })
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
        if let (Token::Word(name), Token::Open) = (self.peek(), self.peek_at(1)) {
            return self.call(name.clone());
        }
        let left_position = self.position();
        let left = self.operand()?;
        let negated = self.peek().is_keyword("NOT") || self.peek().is_keyword("NIN");
        if self.eat_keyword("NOT") {
            self.expect_keyword("IN", "IN after NOT")?;
        } else if !self.eat_keyword("NIN") && !self.eat_keyword("IN") {
            let Token::Op(op) = self.peek().clone() else {
                return Err(self.expected("a comparison operator"));
            };
            self.bump();
            let right = self.operand()?;
            return match (left, right) {
                (Operand::Path(path), Operand::Literal(value)) => {
                    Ok(Condition::Compare { path, op, value })
                }
                (Operand::Literal(value), Operand::Path(path)) => Ok(Condition::Compare {
                    path,
                    op: CompareOp::flipped(op),
                    value,
                }),
                _ => Err(error(left_position, QueryErrorKind::BadComparison)),
            };
        }
        let Operand::Path(path) = left else {
            return Err(error(left_position, QueryErrorKind::BadComparison));
        };
        let values = self.list()?;
        Ok(Condition::In {
            path,
            values,
            negated,
        })
    }

    /// A function call in WHERE: `NAME(path)` or `NAME(path, constant)`.
    fn call(&mut self, name: String) -> Result<Condition, QueryError> {
        let position = self.position();
        let Some(function) = function(&name) else {
            return Err(error(position, QueryErrorKind::UnknownFunction(name)));
        };
        self.bump();
        self.bump();
        let path = self.path("a property path as the function's first argument")?;
        let condition = match function {
            Function::Is(check) => Condition::Is { check, path },
            Function::Text(op) => {
                self.expect(Token::Comma, "',' and a string after the property")?;
                let Token::Str(text) = self.peek().clone() else {
                    return Err(self.expected("a string as the function's second argument"));
                };
                self.bump();
                Condition::Text { op, path, text }
            }
            Function::ArrayContains => {
                self.expect(Token::Comma, "',' and a constant after the property")?;
                let Some(value) = self.literal() else {
                    return Err(self.expected("a constant as the function's second argument"));
                };
                Condition::ArrayContains { path, value }
            }
        };
        self.expect(Token::Close, "')' after the function's arguments")?;
        Ok(condition)
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

/// The rules that tie SELECT to GROUP BY: grouped queries select the grouped property and
/// aggregates only, and only over device twins; ungrouped ones do not mix aggregates with
/// properties; no two items share a result key.
fn check_projection(
    query: &Query,
    projection_position: usize,
    group_position: usize,
) -> Result<(), QueryError> {
    let at = |kind| Err(error(projection_position, kind));
    let items = match (&query.projection, &query.group_by) {
        (Projection::All, None) => return Ok(()),
        (Projection::All, Some(_)) => return at(QueryErrorKind::GroupBySelectAll),
        (Projection::Items(items), _) => items,
    };
    if query.group_by.is_some() && query.source != Source::Devices {
        return Err(error(group_position, QueryErrorKind::GroupByModules));
    }
    let aggregates = items
        .iter()
        .filter(|i| matches!(i.value, Selected::Aggregate(_)))
        .count();
    for item in items {
        let Selected::Path(path) = &item.value else {
            continue;
        };
        match &query.group_by {
            Some(group) if !same_path(group, path) => {
                return at(QueryErrorKind::NotGrouped(path.join(".")));
            }
            None if aggregates > 0 => return at(QueryErrorKind::MixedAggregates),
            _ => {}
        }
    }
    let mut names: Vec<&str> = Vec::with_capacity(items.len());
    for item in items {
        let name = item.name();
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return at(QueryErrorKind::DuplicateName(name.to_string()));
        }
        names.push(name);
    }
    Ok(())
}

/// Paths name the same property: the first segment, like a lookup, ignores case.
fn same_path(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).enumerate().all(|(i, (x, y))| {
            if i == 0 {
                x.eq_ignore_ascii_case(y)
            } else {
                x == y
            }
        })
}

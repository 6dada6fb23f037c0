//! Request validation errors in Pydantic v2's shape, so frontends written against the
//! FastAPI version of this API read our 422s unchanged.

use serde::Serialize;
use serde_json::{Value, json};

/// One item of a 422 `detail` list.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ValidationIssue {
    /// Pydantic's error type, e.g. `missing`, `string_type`, `value_error`, `json_invalid`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "missing")]
    pub kind: &'static str,
    /// Where: `["body", "return_url"]`, `["query", "test_mode"]`, or `["body", <offset>]` for bad JSON.
    #[schema(example = json!(["body", "return_url"]))]
    pub loc: Vec<Value>,
    pub msg: String,
    /// The offending input, as sent.
    // Boxed: an echoed body can be large, and issues travel in `Result`s.
    pub input: Box<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Box<Value>>,
}

impl ValidationIssue {
    pub fn missing(loc: Vec<Value>, input: Value) -> Self {
        Self { kind: "missing", loc, msg: "Field required".into(), input: Box::new(input), ctx: None }
    }

    pub fn string_type(loc: Vec<Value>, input: Value) -> Self {
        Self {
            kind: "string_type",
            loc,
            msg: "Input should be a valid string".into(),
            input: Box::new(input),
            ctx: None,
        }
    }

    pub fn string_too_short(loc: Vec<Value>, input: Value, min_length: usize) -> Self {
        let unit = if min_length == 1 { "character" } else { "characters" };
        Self {
            kind: "string_too_short",
            loc,
            msg: format!("String should have at least {min_length} {unit}"),
            input: Box::new(input),
            ctx: Some(Box::new(json!({ "min_length": min_length }))),
        }
    }

    /// A failed custom check, worded as Pydantic words a `ValueError` from a validator.
    pub fn value_error(loc: Vec<Value>, input: Value, message: &str) -> Self {
        Self {
            kind: "value_error",
            loc,
            msg: format!("Value error, {message}"),
            input: Box::new(input),
            ctx: Some(Box::new(json!({ "error": {} }))),
        }
    }

    pub fn model_attributes_type(loc: Vec<Value>, input: Value) -> Self {
        Self {
            kind: "model_attributes_type",
            loc,
            msg: "Input should be a valid dictionary or object to extract fields from".into(),
            input: Box::new(input),
            ctx: None,
        }
    }

    pub fn string_too_long(loc: Vec<Value>, input: Value, max_length: usize) -> Self {
        Self {
            kind: "string_too_long",
            loc,
            msg: format!("String should have at most {max_length} characters"),
            input: Box::new(input),
            ctx: Some(Box::new(json!({ "max_length": max_length }))),
        }
    }

    pub fn string_pattern_mismatch(loc: Vec<Value>, input: Value, pattern: &str) -> Self {
        Self {
            kind: "string_pattern_mismatch",
            loc,
            msg: format!("String should match pattern '{pattern}'"),
            input: Box::new(input),
            ctx: Some(Box::new(json!({ "pattern": pattern }))),
        }
    }

    /// A value outside a `Literal[...]`, listed as Pydantic lists it: `'a', 'b' or 'c'`.
    pub fn literal_error(loc: Vec<Value>, input: Value, expected: &[&str]) -> Self {
        let quoted: Vec<String> = expected.iter().map(|e| format!("'{e}'")).collect();
        let expected = match quoted.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        Self {
            kind: "literal_error",
            loc,
            msg: format!("Input should be {expected}"),
            input: Box::new(input),
            ctx: Some(Box::new(json!({ "expected": expected }))),
        }
    }

    /// A tagged union's object without its tag field.
    pub fn union_tag_not_found(loc: Vec<Value>, input: Value, discriminator: &str) -> Self {
        Self {
            kind: "union_tag_not_found",
            loc,
            msg: format!("Unable to extract tag using discriminator '{discriminator}'"),
            input: Box::new(input),
            ctx: Some(Box::new(json!({ "discriminator": format!("'{discriminator}'") }))),
        }
    }

    /// A tagged union's object whose tag names no member.
    pub fn union_tag_invalid(
        loc: Vec<Value>,
        input: Value,
        discriminator: &str,
        tag: &str,
        tags: &[&str],
    ) -> Self {
        let expected_tags = tags.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        Self {
            kind: "union_tag_invalid",
            loc,
            msg: format!(
                "Input tag '{tag}' found using '{discriminator}' does not match any of the expected tags: {expected_tags}"
            ),
            input: Box::new(input),
            ctx: Some(Box::new(json!({
                "discriminator": format!("'{discriminator}'"),
                "tag": tag,
                "expected_tags": expected_tags,
            }))),
        }
    }

    pub fn bool_parsing(loc: Vec<Value>, input: &str) -> Self {
        Self {
            kind: "bool_parsing",
            loc,
            msg: "Input should be a valid boolean, unable to interpret input".into(),
            input: Box::new(json!(input)),
            ctx: None,
        }
    }

    /// Malformed JSON, located the way Python's `json` module locates it.
    pub fn json_invalid(text: &str) -> Self {
        let (pos, error) = python_json_error(text);
        Self {
            kind: "json_invalid",
            loc: vec![json!("body"), json!(pos)],
            msg: "JSON decode error".into(),
            input: Box::new(json!({})),
            ctx: Some(Box::new(json!({ "error": error }))),
        }
    }
}

/// Parses a boolean as Pydantic does in lax mode.
pub fn parse_bool(input: &str) -> Option<bool> {
    const TRUE: [&str; 6] = ["1", "on", "t", "true", "y", "yes"];
    const FALSE: [&str; 6] = ["0", "off", "f", "false", "n", "no"];
    if TRUE.iter().any(|t| input.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| input.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

/// Where and why Python's `json.loads` (CPython's C scanner, 3.13+) rejects `text`:
/// a character offset and the message it gives. Only called for text serde_json
/// refused; where Python would accept it (`NaN`, deep nesting) the answer is the
/// first character.
pub fn python_json_error(text: &str) -> (usize, &'static str) {
    let chars: Vec<char> = text.strip_prefix('\u{feff}').unwrap_or(text).chars().collect();
    let mut scanner = PyScanner { s: &chars, depth: 0 };
    let start = scanner.skip_ws(0);
    match scanner.value(start) {
        Err(e) => e,
        Ok(end) => {
            let end = scanner.skip_ws(end);
            if end != chars.len() { (end, "Extra data") } else { (0, "Expecting value") }
        }
    }
}

type Scan = Result<usize, (usize, &'static str)>;

struct PyScanner<'a> {
    s: &'a [char],
    depth: usize,
}

const MAX_DEPTH: usize = 512;

impl PyScanner<'_> {
    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn skip_ws(&self, mut i: usize) -> usize {
        while matches!(self.at(i), Some(' ' | '\t' | '\n' | '\r')) {
            i += 1;
        }
        i
    }

    fn starts_with(&self, i: usize, word: &str) -> bool {
        word.chars().enumerate().all(|(k, c)| self.at(i + k) == Some(c))
    }

    fn value(&mut self, i: usize) -> Scan {
        match self.at(i) {
            None => Err((i, "Expecting value")),
            Some('"') => self.string(i + 1),
            Some('{') => self.nested(i + 1, Self::object),
            Some('[') => self.nested(i + 1, Self::array),
            _ => {
                for word in ["null", "true", "false", "NaN", "Infinity", "-Infinity"] {
                    if self.starts_with(i, word) {
                        return Ok(i + word.chars().count());
                    }
                }
                self.number(i)
            }
        }
    }

    fn nested(&mut self, i: usize, parse: fn(&mut Self, usize) -> Scan) -> Scan {
        if self.depth >= MAX_DEPTH {
            // Python would go on; stop here and let the caller fall back.
            return Err((0, "Expecting value"));
        }
        self.depth += 1;
        let result = parse(self, i);
        self.depth -= 1;
        result
    }

    fn number(&self, start: usize) -> Scan {
        let digit = |i: usize| self.at(i).is_some_and(|c| c.is_ascii_digit());
        let mut i = start;
        if self.at(i) == Some('-') {
            i += 1;
        }
        match self.at(i) {
            Some('0') => i += 1,
            Some('1'..='9') => {
                while digit(i) {
                    i += 1;
                }
            }
            _ => return Err((start, "Expecting value")),
        }
        if self.at(i) == Some('.') && digit(i + 1) {
            i += 2;
            while digit(i) {
                i += 1;
            }
        }
        if matches!(self.at(i), Some('e' | 'E')) {
            let mut j = i + 1;
            if matches!(self.at(j), Some('+' | '-')) {
                j += 1;
            }
            let digits_from = j;
            while digit(j) {
                j += 1;
            }
            if j > digits_from {
                i = j;
            }
        }
        Ok(i)
    }

    /// `i` is just past the opening quote.
    fn string(&self, mut i: usize) -> Scan {
        let begin = i - 1;
        loop {
            let c = loop {
                match self.at(i) {
                    None => return Err((begin, "Unterminated string starting at")),
                    Some(c @ ('"' | '\\')) => break c,
                    Some(c) if (c as u32) < 0x20 => return Err((i, "Invalid control character at")),
                    Some(_) => i += 1,
                }
            };
            i += 1;
            if c == '"' {
                return Ok(i);
            }
            match self.at(i) {
                None => return Err((begin, "Unterminated string starting at")),
                Some('u') => {
                    let hex_start = i + 1;
                    if hex_start + 4 >= self.s.len() {
                        return Err((i, "Invalid \\uXXXX escape"));
                    }
                    if !(hex_start..hex_start + 4).all(|k| self.s[k].is_ascii_hexdigit()) {
                        return Err((i, "Invalid \\uXXXX escape"));
                    }
                    i = hex_start + 4;
                }
                Some('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') => i += 1,
                Some(_) => return Err((i - 1, "Invalid \\escape")),
            }
        }
    }

    /// `i` is just past `{`.
    fn object(&mut self, i: usize) -> Scan {
        let mut i = self.skip_ws(i);
        if self.at(i) == Some('}') {
            return Ok(i + 1);
        }
        loop {
            if self.at(i) != Some('"') {
                return Err((i, "Expecting property name enclosed in double quotes"));
            }
            i = self.skip_ws(self.string(i + 1)?);
            if self.at(i) != Some(':') {
                return Err((i, "Expecting ':' delimiter"));
            }
            i = self.skip_ws(i + 1);
            let end = self.value(i)?;
            i = self.skip_ws(end);
            match self.at(i) {
                Some('}') => return Ok(i + 1),
                Some(',') => {}
                _ => return Err((i, "Expecting ',' delimiter")),
            }
            let comma = i;
            i = self.skip_ws(i + 1);
            if self.at(i) == Some('}') {
                return Err((comma, "Illegal trailing comma before end of object"));
            }
        }
    }

    /// `i` is just past `[`.
    fn array(&mut self, i: usize) -> Scan {
        let mut i = self.skip_ws(i);
        if self.at(i) == Some(']') {
            return Ok(i + 1);
        }
        loop {
            let end = self.value(i)?;
            i = self.skip_ws(end);
            match self.at(i) {
                Some(']') => return Ok(i + 1),
                Some(',') => {}
                _ => return Err((i, "Expecting ',' delimiter")),
            }
            let comma = i;
            i = self.skip_ws(i + 1);
            if self.at(i) == Some(']') {
                return Err((comma, "Illegal trailing comma before end of array"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_json_errors_like_python() {
        // Expected values are what CPython 3.13's json.loads reports.
        let cases: &[(&str, usize, &str)] = &[
            ("{\"return_url\": ", 15, "Expecting value"),
            ("", 0, "Expecting value"),
            ("   ", 3, "Expecting value"),
            ("{", 1, "Expecting property name enclosed in double quotes"),
            ("{'a': 1}", 1, "Expecting property name enclosed in double quotes"),
            ("{\"a\" 1}", 5, "Expecting ':' delimiter"),
            ("{\"a\": 1 \"b\": 2}", 8, "Expecting ',' delimiter"),
            ("{\"a\": 1,}", 7, "Illegal trailing comma before end of object"),
            ("[1,]", 2, "Illegal trailing comma before end of array"),
            ("[1 2]", 3, "Expecting ',' delimiter"),
            ("{\"a\": \"x", 6, "Unterminated string starting at"),
            ("{\"a\": \"x\ty\"}", 8, "Invalid control character at"),
            ("{\"a\": \"\\q\"}", 7, "Invalid \\escape"),
            ("{\"a\": \"\\u12\"}", 8, "Invalid \\uXXXX escape"),
            ("{} x", 3, "Extra data"),
            ("01", 1, "Extra data"),
            ("-", 0, "Expecting value"),
            ("{\"a\": tru}", 6, "Expecting value"),
            ("{\"é\": x}", 6, "Expecting value"),
        ];
        for (text, pos, msg) in cases {
            assert_eq!(python_json_error(text), (*pos, *msg), "for {text:?}");
        }
    }

    #[test]
    fn parses_every_pydantic_bool_spelling() {
        for t in ["1", "on", "ON", "t", "T", "true", "True", "y", "yes", "YES"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "off", "f", "F", "false", "FALSE", "n", "no", "No"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "maybe", "2", " true", "truee", "nope"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }
}

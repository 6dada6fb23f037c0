//! Request validation in Pydantic v2's shape, so frontends written against the FastAPI
//! version of this API read our 422s unchanged: the issue type, its constructors, and
//! [`FromJson`], which the request types implement next to their definitions.

mod python_json;

use serde::Serialize;
use serde_json::{Map, Value, json};

use python_json::python_json_error;

/// Where a value sits in the request: `["body", "flow", "subscription_cancel", ...]`.
pub type Loc = Vec<Value>;

/// `loc` with one more step.
pub fn at(loc: &[Value], step: &str) -> Loc {
    let mut loc = loc.to_vec();
    loc.push(json!(step));
    loc
}

/// A request type read from JSON the way Pydantic validates a model: every problem is
/// pushed to `issues` (in the model's field order) and the answer is `None` if there was any.
pub trait FromJson: Sized {
    fn from_json(value: Value, loc: &[Value], issues: &mut Vec<ValidationIssue>) -> Option<Self>;
}

/// An optional field: `Some(None)` when absent or null, `None` when present but invalid.
pub fn optional<T: FromJson>(
    fields: &mut Map<String, Value>,
    loc: &[Value],
    name: &str,
    issues: &mut Vec<ValidationIssue>,
) -> Option<Option<T>> {
    match fields.remove(name) {
        None | Some(Value::Null) => Some(None),
        Some(value) => T::from_json(value, &at(loc, name), issues).map(Some),
    }
}

/// The fields of a model's object; anything else is the error Pydantic gives for it.
pub fn object(value: Value, loc: &[Value]) -> Result<Map<String, Value>, ValidationIssue> {
    match value {
        Value::Object(fields) => Ok(fields),
        other => Err(ValidationIssue::model_attributes_type(loc.to_vec(), other)),
    }
}

/// An object of a union tagged by its `type` field: the tag, and the object's fields.
pub fn tagged<'t>(
    value: Value,
    loc: &[Value],
    tags: &[&'t str],
) -> Result<(&'t str, Map<String, Value>), ValidationIssue> {
    let Value::Object(fields) = value else {
        return Err(ValidationIssue::model_attributes_type(loc.to_vec(), value));
    };
    let Some(tag) = fields.get("type") else {
        return Err(ValidationIssue::union_tag_not_found(loc.to_vec(), Value::Object(fields), "type"));
    };
    let name = tag.as_str().map_or_else(|| tag.to_string(), str::to_owned);
    match tags.iter().find(|t| **t == name) {
        // `type` stays in: Pydantic echoes the whole object as the input of a later error.
        Some(tag) => Ok((tag, fields)),
        None => {
            Err(ValidationIssue::union_tag_invalid(loc.to_vec(), Value::Object(fields), "type", &name, tags))
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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

//! Where Python's `json` module would say a body is malformed, so a 422 for bad JSON
//! points at the same character FastAPI's does.

/// Where and why Python's `json.loads` (CPython's C scanner, 3.13+) rejects `text`:
/// a character offset and the message it gives. Only called for text serde_json
/// refused; where Python would accept it (`NaN`, deep nesting) the answer is the
/// first character.
pub(super) fn python_json_error(text: &str) -> (usize, &'static str) {
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
}

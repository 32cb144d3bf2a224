//! Multi-document YAML → JSON values that remember the line of every node.
//!
//! Kubernetes manifests are YAML, but their types deserialize from JSON-shaped values, and error
//! messages must point at `path:line`. saphyr's event parser gives us spans; we build
//! `serde_json::Value`s from the events and record, for every field path
//! (`spec.steps[0].ring.targets[1]`), the line it starts on. Scalars are resolved with the YAML
//! 1.2 core schema, so `09:00` stays a string and `no` is not a boolean.

use std::collections::{BTreeMap, HashMap};

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};
use serde_json::{Map, Number, Value};

/// One YAML document: its value and where each of its nodes starts.
#[derive(Debug, Clone)]
pub struct Document {
    /// Line (1-based) the document's content starts on.
    pub line: usize,
    /// The document as a JSON value.
    pub value: Value,
    /// Lines of every node, by field path.
    pub lines: LineMap,
}

/// Field path → line. Paths look like serde_path_to_error's: `spec.steps[0].ring`.
#[derive(Debug, Clone, Default)]
pub struct LineMap {
    lines: BTreeMap<String, usize>,
}

impl LineMap {
    /// The line of `path`, or of its nearest ancestor that has one, or `fallback`.
    pub fn line_of(&self, path: &str, fallback: usize) -> usize {
        let mut p = path;
        loop {
            if let Some(line) = self.lines.get(p) {
                return *line;
            }
            match p.rfind(['.', '[']) {
                Some(cut) => p = &p[..cut],
                None => return self.lines.get("").copied().unwrap_or(fallback),
            }
        }
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Everything a file yielded: the documents that parsed, and the syntax errors of the others.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Non-empty documents, in file order.
    pub documents: Vec<Document>,
    /// One syntax error per document that could not be parsed.
    pub errors: Vec<SyntaxError>,
    /// `(kind, name)` guessed from the text of each document that could not be parsed, so that
    /// references to it are not reported as dangling on top of its syntax error.
    pub broken: Vec<(String, String)>,
}

/// Deepest nesting accepted; deeper input is rejected instead of exhausting the stack.
const MAX_DEPTH: usize = 64;
/// Most alias expansions per document, so a "billion laughs" input cannot blow up memory.
const MAX_ALIAS_NODES: usize = 10_000;

/// Parses a multi-document YAML text.
///
/// The text is cut at document markers (`---` or `...` at the start of a line, which always end
/// a document, even inside a block scalar) and each document is parsed on its own, so a syntax
/// error costs only its own document, not every one after it.
pub fn parse(text: &str) -> Parsed {
    let mut documents = Vec::new();
    let mut parsed = parse_each(text, |doc| documents.push(doc));
    parsed.documents = documents;
    parsed
}

/// Like [`parse`], but hands each document to `each` as soon as it is parsed instead of
/// collecting them; the returned [`Parsed`] has no documents, only the errors.
///
/// A document's JSON value costs far more than the typed object made from it (every small
/// mapping is a B-tree node of its own), so a caller that converts documents one at a time
/// never holds a whole folder of values at once: with 10,000 agents and their Secrets that was
/// a 70 MB peak at start, and glibc keeps such a peak as resident memory for the process's life.
pub fn parse_each(text: &str, mut each: impl FnMut(Document)) -> Parsed {
    let mut parsed = Parsed::default();
    for (offset, chunk) in chunks(text) {
        let one = parse_stream(chunk);
        for doc in one.documents {
            each(doc.shifted(offset));
        }
        if let Some(mut e) = one.error {
            e.line = if e.line == 0 {
                offset + 1
            } else {
                e.line + offset
            };
            parsed.errors.push(e);
            if let Some(guess) = guess_identity(chunk) {
                parsed.broken.push(guess);
            }
        }
    }
    parsed
}

/// Splits at document-marker lines; yields `(lines before the chunk, chunk text)`.
fn chunks(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let (mut start, mut start_line, mut line) = (0usize, 0usize, 0usize);
    let mut pos = 0usize;
    for l in text.split_inclusive('\n') {
        let bare = l.trim_end_matches(['\n', '\r']);
        let marker =
            bare == "---" || bare == "..." || bare.starts_with("--- ") || bare.starts_with("---\t");
        if marker && pos > start {
            out.push((start_line, &text[start..pos]));
            start = pos;
            start_line = line;
        }
        pos += l.len();
        line += 1;
    }
    if pos > start {
        out.push((start_line, &text[start..]));
    }
    out
}

/// `(kind, metadata.name)` read off the raw text of a document that does not parse.
fn guess_identity(chunk: &str) -> Option<(String, String)> {
    let mut kind = None;
    let mut name = None;
    let mut in_metadata = false;
    for line in chunk.lines() {
        if let Some(k) = line.strip_prefix("kind:") {
            kind = Some(k.trim().trim_matches(['"', '\'']).to_owned());
        }
        if line.starts_with("metadata:") {
            in_metadata = true;
            if let Some(rest) = line.split("name:").nth(1) {
                name = rest
                    .split([',', '}'])
                    .next()
                    .map(|n| n.trim().trim_matches(['"', '\'']).to_owned());
            }
        } else if !line.starts_with(' ') {
            in_metadata = false;
        } else if in_metadata
            && name.is_none()
            && let Some(n) = line.trim_start().strip_prefix("name:")
        {
            name = Some(n.trim().trim_matches(['"', '\'']).to_owned());
        }
    }
    Some((kind?, name.filter(|n| !n.is_empty())?))
}

impl Document {
    fn shifted(mut self, offset: usize) -> Self {
        self.line += offset;
        for l in self.lines.lines.values_mut() {
            *l += offset;
        }
        self
    }
}

/// What parsing one chunk yields.
#[derive(Default)]
struct Stream {
    documents: Vec<Document>,
    error: Option<SyntaxError>,
}

fn parse_stream(text: &str) -> Stream {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        lines: BTreeMap::new(),
        alias_nodes: 0,
    };
    let mut parsed = Stream::default();
    loop {
        match builder.next() {
            Ok(None) => break,
            Ok(Some((Event::StreamStart | Event::DocumentEnd, _))) => {}
            Ok(Some((Event::StreamEnd, _))) => break,
            Ok(Some((Event::DocumentStart(_), span))) => {
                builder.anchors.clear();
                builder.lines.clear();
                builder.alias_nodes = 0;
                match builder.node_after_document_start(span.start.line()) {
                    Ok(Some(doc)) => parsed.documents.push(doc),
                    Ok(None) => {}
                    Err(e) => {
                        parsed.error = Some(e);
                        break;
                    }
                }
            }
            Ok(Some((_, span))) => {
                parsed.error = Some(SyntaxError {
                    line: span.start.line(),
                    message: "unexpected YAML content outside a document".to_owned(),
                });
                break;
            }
            Err(e) => {
                parsed.error = Some(e);
                break;
            }
        }
    }
    parsed
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Value>,
    lines: BTreeMap<String, usize>,
    alias_nodes: usize,
}

fn scan_error(e: &ScanError) -> SyntaxError {
    SyntaxError {
        line: e.marker().line(),
        message: format!("YAML syntax error: {}", e.info()),
    }
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<Option<(Event<'a>, Span)>, SyntaxError> {
        match self.parser.next_event() {
            None => Ok(None),
            Some(Ok(ev)) => Ok(Some(ev)),
            Some(Err(e)) => Err(scan_error(&e)),
        }
    }

    fn expect_next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        self.next()?.ok_or_else(|| SyntaxError {
            line: 0,
            message: "YAML ended in the middle of a document".to_owned(),
        })
    }

    /// Reads the document's root node and its `DocumentEnd`; `None` for an empty document.
    fn node_after_document_start(&mut self, line: usize) -> Result<Option<Document>, SyntaxError> {
        let (ev, span) = self.expect_next()?;
        if matches!(ev, Event::DocumentEnd) {
            return Ok(None);
        }
        let start_line = span.start.line().max(line);
        let value = self.node(ev, span, String::new(), 0)?;
        if value.is_null() {
            return Ok(None);
        }
        Ok(Some(Document {
            line: start_line,
            value,
            lines: LineMap {
                lines: std::mem::take(&mut self.lines),
            },
        }))
    }

    fn node(
        &mut self,
        ev: Event<'a>,
        span: Span,
        path: String,
        depth: usize,
    ) -> Result<Value, SyntaxError> {
        let line = span.start.line();
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                line,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.lines.entry(path.clone()).or_insert(line);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let value = resolve_scalar(&text, style);
                self.remember(anchor, &value);
                Ok(value)
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    line,
                    message: "alias to an unknown anchor".to_owned(),
                })?;
                self.alias_nodes += count_nodes(&value);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(SyntaxError {
                        line,
                        message: "too many alias expansions".to_owned(),
                    });
                }
                Ok(value)
            }
            Event::SequenceStart(anchor, _tag) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.expect_next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let child = format!("{path}[{}]", items.len());
                    items.push(self.node(ev, span, child, depth + 1)?);
                }
                let value = Value::Array(items);
                self.remember(anchor, &value);
                Ok(value)
            }
            Event::MappingStart(anchor, _tag) => {
                let mut map = Map::new();
                loop {
                    let (kev, kspan) = self.expect_next()?;
                    if matches!(kev, Event::MappingEnd) {
                        break;
                    }
                    let key_line = kspan.start.line();
                    let key = match self.node(kev, kspan, format!("{path}.<key>"), depth + 1)? {
                        Value::String(s) => s,
                        Value::Null => "null".to_owned(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        Value::Array(_) | Value::Object(_) => {
                            return Err(SyntaxError {
                                line: key_line,
                                message: "a mapping key must be a plain value".to_owned(),
                            });
                        }
                    };
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    if map.contains_key(&key) {
                        return Err(SyntaxError {
                            line: key_line,
                            message: format!("duplicate key `{key}`"),
                        });
                    }
                    // The field's line is the key's line (where a reader looks), not the value's.
                    self.lines.insert(child.clone(), key_line);
                    let (vev, vspan) = self.expect_next()?;
                    let value = self.node(vev, vspan, child, depth + 1)?;
                    map.insert(key, value);
                }
                self.lines.remove(&format!("{path}.<key>"));
                let value = Value::Object(map);
                self.remember(anchor, &value);
                Ok(value)
            }
            Event::SequenceEnd | Event::MappingEnd => Err(SyntaxError {
                line,
                message: "unexpected end of a collection".to_owned(),
            }),
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => Err(SyntaxError {
                line,
                message: "unexpected document boundary".to_owned(),
            }),
        }
    }

    fn remember(&mut self, anchor: usize, value: &Value) {
        // saphyr numbers anchors from 1; 0 means "no anchor".
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
    }
}

fn count_nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// YAML 1.2 core schema resolution for plain scalars; quoted and block scalars are strings.
fn resolve_scalar(text: &str, style: ScalarStyle) -> Value {
    if style != ScalarStyle::Plain {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n);
    }
    if looks_like_float(text)
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

fn parse_int(text: &str) -> Option<Number> {
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, body) = if let Some(rest) = digits.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = digits.strip_prefix("0o") {
        (8, rest)
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    if neg {
        let v = i64::try_from(magnitude).ok()?;
        Some(Number::from(-v))
    } else {
        Some(Number::from(magnitude))
    }
}

fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    !body.is_empty()
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        && body.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_fields_and_items() {
        let text =
            "a: 1\n---\nkind: X\nspec:\n  steps:\n    - play: {prompt: w}\n    - hangup: {}\n";
        let parsed = parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.documents.len(), 2);
        let doc = &parsed.documents[1];
        assert_eq!(doc.line, 3);
        assert_eq!(doc.lines.line_of("kind", 0), 3);
        assert_eq!(doc.lines.line_of("spec.steps[1].hangup", 0), 7);
        assert_eq!(doc.lines.line_of("spec.steps[0].play.prompt", 0), 6);
        assert_eq!(doc.lines.line_of("spec.steps[0].nothing.here", 0), 6);
        assert_eq!(
            doc.value["spec"]["steps"][1]["hangup"],
            serde_json::json!({})
        );
    }

    #[test]
    fn core_schema_scalars() {
        let parsed =
            parse("a: 09:00\nb: no\nc: 12\nd: '12'\ne: 0.12\nf: ~\ng: +380441234567\nh: true\n");
        let v = &parsed.documents[0].value;
        assert_eq!(v["a"], "09:00");
        assert_eq!(v["b"], "no");
        assert_eq!(v["c"], 12);
        assert_eq!(v["d"], "12");
        assert_eq!(v["e"], 0.12);
        assert!(v["f"].is_null());
        assert_eq!(v["g"], 380441234567u64);
        assert_eq!(v["h"], true);
    }

    #[test]
    fn syntax_error_costs_only_its_own_document() {
        let text =
            "a: 1\n---\nkind: Carrier\nmetadata:\n  name: trunk\nspec: [1, 2\nc: 3\n---\nd: 4\n";
        let parsed = parse(text);
        assert_eq!(parsed.documents.len(), 2);
        assert_eq!(parsed.documents[1].value["d"], 4);
        assert_eq!(parsed.documents[1].line, 9);
        let err = &parsed.errors[0];
        assert!(err.line >= 6 && err.line <= 8, "{err:?}");
        assert_eq!(
            parsed.broken,
            vec![("Carrier".to_owned(), "trunk".to_owned())]
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let parsed = parse("a: 1\nb: 2\na: 3\n");
        let err = parsed.errors.first().expect("an error");
        assert_eq!(err.line, 3);
        assert!(err.message.contains("duplicate key `a`"));
    }

    #[test]
    fn aliases_expand_and_bombs_stop() {
        let parsed = parse("x: &a {k: v}\ny: *a\n");
        assert_eq!(parsed.documents[0].value["y"]["k"], "v");
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let prev = if i == 1 {
                "a".to_owned()
            } else {
                format!("a{}", i - 1)
            };
            bomb.push_str(&format!(
                "a{i}: &a{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let parsed = parse(&bomb);
        assert!(!parsed.errors.is_empty());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "[".repeat(10_000);
        let parsed = parse(&text);
        assert!(!parsed.errors.is_empty());
    }
}

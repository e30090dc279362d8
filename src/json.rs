//! JSON as zkreceipt reads it from files it did not write, or that a prover hands over: one
//! meaning per document. A key given twice is refused (serde_json's `Value` would keep the last
//! silently, while another reader may show the first), a UTF-8 byte-order mark is skipped, and
//! the usual ways of writing numbers JSON does not have (Python's `NaN`, `Infinity`) get a hint.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Deserialize, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parse `text` as one JSON document, refusing duplicate keys. The message says what is wrong
/// and where (line and column), with a hint for NaN and Infinity.
pub fn parse_strict(text: &str) -> Result<Value, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Strict::deserialize(&mut de).and_then(|v| de.end().map(|()| v.0));
    parsed.map_err(|e| {
        let hint = non_json_number(text, &e)
            .map(|word| {
                format!(
                    " (`{word}` is not a JSON number: JSON has no NaN or Infinity, which Python's \
                     json.dump writes unless given allow_nan=False; replace them with finite numbers)"
                )
            })
            .unwrap_or_default();
        format!("{e}{hint}")
    })
}

/// The NaN or Infinity spelling where a syntax error points, if that is what it found.
fn non_json_number(text: &str, e: &serde_json::Error) -> Option<&'static str> {
    if !e.is_syntax() || e.line() == 0 {
        return None;
    }
    let line = text.lines().nth(e.line() - 1)?;
    // serde_json points at the offending character (1-based); look from just before it.
    let from = line
        .char_indices()
        .nth(e.column().saturating_sub(1))
        .map_or(line.len(), |(i, _)| i);
    let start = line[..from]
        .rfind(|c: char| !(c.is_ascii_alphabetic() || c == '-' || c == '+'))
        .map_or(0, |i| i + 1);
    let word = line[start..].trim_start_matches(['-', '+']);
    ["NaN", "Infinity", "inf", "nan"]
        .into_iter()
        .find(|w| word.starts_with(w))
}

/// A JSON value whose objects have distinct keys.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a finite number")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if obj.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "key `{key}` appears twice in one object (readers disagree on which to keep)"
                )));
            }
            let Strict(v) = map.next_value()?;
            obj.insert(key, v);
        }
        Ok(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_parse_as_serde_json_reads_them() {
        let text = r#"{"a": [1, -2, 3.5, 1e3, true, null, "x"], "b": {"c": 18446744073709551615}}"#;
        let want: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse_strict(text).unwrap(), want);
        // Key order is kept (the receipt's canonical form compares it).
        let keys: Vec<_> = parse_strict(r#"{"z": 1, "a": 2}"#)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["z", "a"]);
    }

    #[test]
    fn a_key_given_twice_is_refused_wherever_it_is() {
        for text in [
            r#"{"input_data": [[1]], "input_data": [[2]]}"#,
            r#"{"a": [{"b": 1, "c": 2, "b": 3}]}"#,
        ] {
            let e = parse_strict(text).unwrap_err();
            assert!(e.contains("appears twice") && e.contains("line 1"), "{e}");
        }
        // The same key in two objects is fine.
        assert!(parse_strict(r#"[{"b": 1}, {"b": 2}]"#).is_ok());
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_trailing_text_refused() {
        assert_eq!(parse_strict("\u{feff}[1]").unwrap(), serde_json::json!([1]));
        assert!(parse_strict("[1] [2]").unwrap_err().contains("trailing"));
    }

    #[test]
    fn nan_and_infinity_get_a_hint() {
        for (text, word) in [
            ("{\"input_data\": [[NaN, 1]]}", "NaN"),
            ("{\"input_data\": [[0.5, Infinity]]}", "Infinity"),
            ("{\"input_data\": [[0.5,\n -Infinity]]}", "Infinity"),
        ] {
            let e = parse_strict(text).unwrap_err();
            assert!(
                e.contains(&format!("`{word}` is not a JSON number")),
                "{text}: {e}"
            );
            assert!(e.contains("allow_nan=False"), "{e}");
        }
        let e = parse_strict("{\"input_data\": [[0.5,]]}").unwrap_err();
        assert!(!e.contains("NaN"), "{e}");
    }
}

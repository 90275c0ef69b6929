//! Grape-style request parameters: merging query and body, coercion, and the exact error
//! fragments (`<p> is missing`, `<p> is empty`, `<p> is invalid`, `<p> does not have a valid
//! value`, `<p> has a value not allowed`) collected in declaration order. Pure.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use std::collections::BTreeMap;

/// One parameter value as received (query/form values are strings; JSON keeps its type).
#[derive(Debug, Clone, PartialEq)]
pub enum PVal {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Null,
    Array(Vec<PVal>),
    Object,
}

impl PVal {
    fn from_json(v: &serde_json::Value) -> PVal {
        match v {
            serde_json::Value::Null => PVal::Null,
            serde_json::Value::Bool(b) => PVal::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => PVal::Int(i),
                None => PVal::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => PVal::Str(s.clone()),
            serde_json::Value::Array(a) => PVal::Array(a.iter().map(PVal::from_json).collect()),
            serde_json::Value::Object(_) => PVal::Object,
        }
    }

    /// The value as a query-string component (for `Link` headers).
    pub fn to_query_value(&self) -> String {
        match self {
            PVal::Str(s) => s.clone(),
            PVal::Bool(b) => b.to_string(),
            PVal::Int(i) => i.to_string(),
            PVal::Float(f) => f.to_string(),
            PVal::Null | PVal::Object | PVal::Array(_) => String::new(),
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Grape's parse error for a body that does not match its content type (unverified text).
    #[error("message body does not match declared format")]
    Malformed,
}

/// The merged parameters of a request (body wins over query, as with Rack).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pub map: BTreeMap<String, PVal>,
}

fn insert_pair(map: &mut BTreeMap<String, PVal>, k: String, v: String) {
    if let Some(base) = k.strip_suffix("[]") {
        match map.get_mut(base) {
            Some(PVal::Array(a)) => a.push(PVal::Str(v)),
            _ => {
                map.insert(base.to_string(), PVal::Array(vec![PVal::Str(v)]));
            }
        }
    } else {
        map.insert(k, PVal::Str(v));
    }
}

impl Params {
    pub fn from_query(query: &str) -> Params {
        let mut map = BTreeMap::new();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        for (k, v) in pairs {
            insert_pair(&mut map, k, v);
        }
        Params { map }
    }

    /// Merges a body by content type: JSON object, urlencoded form or multipart form.
    pub fn merge_body(&mut self, content_type: &str, body: &[u8]) -> Result<(), BodyError> {
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(());
        }
        let ct = content_type.to_ascii_lowercase();
        if ct.starts_with("application/json") || ct.contains("+json") {
            let v: serde_json::Value =
                serde_json::from_slice(body).map_err(|_| BodyError::Malformed)?;
            if let serde_json::Value::Object(o) = v {
                for (k, v) in o {
                    self.map.insert(k, PVal::from_json(&v));
                }
            }
            // A JSON array/scalar body carries no named parameters (unverified: Grape may 400).
            Ok(())
        } else if ct.starts_with("multipart/form-data") {
            let boundary = ct
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("boundary="))
                .next()
                .map(|b| b.trim_matches('"').to_string());
            // The boundary is case-sensitive: take it from the original header.
            let boundary = boundary.and_then(|b| {
                let lower = content_type.to_ascii_lowercase();
                lower
                    .find(&b)
                    .map(|i| content_type[i..i + b.len()].to_string())
            });
            let Some(boundary) = boundary else {
                return Err(BodyError::Malformed);
            };
            for (k, v) in parse_multipart(body, &boundary) {
                insert_pair(&mut self.map, k, v);
            }
            Ok(())
        } else {
            // application/x-www-form-urlencoded, and what curl sends by default.
            let text = String::from_utf8_lossy(body);
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_str(&text).map_err(|_| BodyError::Malformed)?;
            for (k, v) in pairs {
                insert_pair(&mut self.map, k, v);
            }
            Ok(())
        }
    }

    pub fn get(&self, name: &str) -> Option<&PVal> {
        self.map.get(name)
    }

    /// A string parameter as sent (strings only; for credentials).
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.map.get(name) {
            Some(PVal::Str(s)) => Some(s),
            _ => None,
        }
    }
}

fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    for part in text.split(&delim).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let name = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .flat_map(|l| l.split(';'))
            .filter_map(|p| p.trim().strip_prefix("name="))
            .next()
            .map(|n| n.trim_matches('"').to_string());
        if let Some(name) = name {
            let value = value.strip_suffix("\r\n").unwrap_or(value);
            out.push((name, value.to_string()));
        }
    }
    out
}

/// Grape's Boolean coercion (`true/false`, `1/0`, `t/f`, `yes/no`, `y/n`, `on/off`, any
/// case). The exact accepted set is unverified; these are dry-types' `Params::Bool` values.
pub fn coerce_bool(v: &PVal) -> Result<Option<bool>, ()> {
    match v {
        PVal::Bool(b) => Ok(Some(*b)),
        PVal::Int(1) => Ok(Some(true)),
        PVal::Int(0) => Ok(Some(false)),
        PVal::Null => Ok(None),
        // Grape treats "" as nil for non-String types.
        PVal::Str(s) if s.is_empty() => Ok(None),
        PVal::Str(s) => match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "t" | "yes" | "y" | "on" => Ok(Some(true)),
            "0" | "false" | "f" | "no" | "n" | "off" => Ok(Some(false)),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

/// Grape's Integer coercion: decimal integers only (`1.5`, `abc` are invalid).
pub fn coerce_int(v: &PVal) -> Result<Option<i64>, ()> {
    match v {
        PVal::Int(i) => Ok(Some(*i)),
        PVal::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(*f as i64)),
        PVal::Null => Ok(None),
        PVal::Str(s) if s.is_empty() => Ok(None),
        PVal::Str(s) => {
            let t = s.strip_prefix('+').unwrap_or(s);
            let digits = t.strip_prefix('-').unwrap_or(t);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                t.parse().map(Some).map_err(|_| ())
            } else {
                Err(())
            }
        }
        _ => Err(()),
    }
}

/// Grape's String coercion: scalars become strings, arrays/objects are invalid.
pub fn coerce_string(v: &PVal) -> Result<Option<String>, ()> {
    match v {
        PVal::Str(s) => Ok(Some(s.clone())),
        PVal::Bool(b) => Ok(Some(b.to_string())),
        PVal::Int(i) => Ok(Some(i.to_string())),
        PVal::Float(f) => Ok(Some(f.to_string())),
        PVal::Null => Ok(None),
        PVal::Array(_) | PVal::Object => Err(()),
    }
}

/// Lenient ISO 8601 parsing as Ruby's `DateTime.parse` does for the usual forms: with `Z` or an
/// offset, without zone (UTC), with a space instead of `T`, date only.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix(" UTC"))
        .unwrap_or(s);
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, f) {
            return Some(t.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(naive, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc2822(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Collects Grape errors in declaration order and reads typed values.
#[derive(Debug, Default)]
pub struct Validator<'a> {
    params: Option<&'a Params>,
    pub errors: Vec<String>,
}

impl<'a> Validator<'a> {
    pub fn new(params: &'a Params) -> Validator<'a> {
        Validator {
            params: Some(params),
            errors: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> Option<&'a PVal> {
        self.params.and_then(|p| p.get(name))
    }

    fn err(&mut self, name: &str, what: &str) {
        self.errors.push(format!("{name} {what}"));
    }

    /// `requires :name, type: String, allow_blank: false`.
    pub fn required_nonblank_string(&mut self, name: &str) -> Option<String> {
        let Some(v) = self.get(name) else {
            self.err(name, "is missing");
            self.err(name, "is empty");
            return None;
        };
        match coerce_string(v) {
            Err(()) => {
                self.err(name, "is invalid");
                None
            }
            Ok(s) => {
                let s = s.unwrap_or_default();
                if s.trim().is_empty() {
                    self.err(name, "is empty");
                    None
                } else {
                    Some(s)
                }
            }
        }
    }

    /// `requires :name, type: String` (servers without `allow_blank: false`).
    pub fn required_string(&mut self, name: &str) -> Option<String> {
        let Some(v) = self.get(name) else {
            self.err(name, "is missing");
            return None;
        };
        match coerce_string(v) {
            Err(()) => {
                self.err(name, "is invalid");
                None
            }
            Ok(s) => Some(s.unwrap_or_default()),
        }
    }

    /// `requires/optional :name, type: String, values: [...]`.
    pub fn string_in(&mut self, name: &str, required: bool, allowed: &[&str]) -> Option<String> {
        let Some(v) = self.get(name) else {
            if required {
                self.err(name, "is missing");
                self.err(name, "does not have a valid value");
            }
            return None;
        };
        match coerce_string(v) {
            Err(()) => {
                self.err(name, "is invalid");
                None
            }
            Ok(s) => {
                let s = s.unwrap_or_default();
                if allowed.contains(&s.as_str()) {
                    Some(s)
                } else {
                    self.err(name, "does not have a valid value");
                    None
                }
            }
        }
    }

    /// `optional :name, type: String`.
    pub fn optional_string(&mut self, name: &str) -> Option<String> {
        let v = self.get(name)?;
        match coerce_string(v) {
            Err(()) => {
                self.err(name, "is invalid");
                None
            }
            Ok(s) => s,
        }
    }

    /// `requires :name, type: Boolean`. An empty/null value coerces to nil, which we store as
    /// false (unverified).
    pub fn required_bool(&mut self, name: &str) -> Option<bool> {
        let Some(v) = self.get(name) else {
            self.err(name, "is missing");
            return None;
        };
        match coerce_bool(v) {
            Ok(b) => Some(b.unwrap_or(false)),
            Err(()) => {
                self.err(name, "is invalid");
                None
            }
        }
    }

    /// `optional :name, type: Boolean`: absent → `None`.
    pub fn optional_bool(&mut self, name: &str) -> Option<bool> {
        let v = self.get(name)?;
        match coerce_bool(v) {
            Ok(b) => b,
            Err(()) => {
                self.err(name, "is invalid");
                None
            }
        }
    }

    /// `requires :name, type: Integer` for a route parameter.
    pub fn required_int(&mut self, name: &str, raw: &str) -> Option<i64> {
        match coerce_int(&PVal::Str(raw.to_string())) {
            Ok(Some(i)) => Some(i),
            _ => {
                self.err(name, "is invalid");
                None
            }
        }
    }

    /// `optional :name, type: Integer`.
    pub fn optional_int(&mut self, name: &str) -> Option<i64> {
        let v = self.get(name)?;
        match coerce_int(v) {
            Ok(i) => i,
            Err(()) => {
                self.err(name, "is invalid");
                None
            }
        }
    }

    /// `optional :name, type: DateTime`.
    pub fn optional_datetime(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let v = self.get(name)?;
        match v {
            PVal::Str(s) if s.is_empty() => None,
            PVal::Null => None,
            PVal::Str(s) => match parse_datetime(s) {
                Some(t) => Some(t),
                None => {
                    self.err(name, "is invalid");
                    None
                }
            },
            _ => {
                self.err(name, "is invalid");
                None
            }
        }
    }

    /// `use :pagination`: page (default 1, <1 → 1) and per_page (default 20, 0 → not allowed,
    /// negative → 20, >100 → 100).
    pub fn pagination(&mut self) -> (u64, u64) {
        let page = self.optional_int("page").unwrap_or(1);
        let per_page_raw = self.optional_int("per_page");
        if per_page_raw == Some(0) {
            self.err("per_page", "has a value not allowed");
        }
        let per_page = match per_page_raw {
            Some(p) if p > 100 => 100,
            Some(p) if p > 0 => p,
            _ => 20,
        };
        (page.max(1) as u64, per_page as u64)
    }

    /// `Err` with Grape's joined message if anything failed.
    pub fn finish(self) -> Result<(), String> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors.join(", "))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn empty_create_body_gives_the_spec_message() {
        let p = Params::default();
        let mut v = Validator::new(&p);
        v.required_nonblank_string("environment");
        v.required_nonblank_string("sha");
        v.required_nonblank_string("ref");
        v.required_bool("tag");
        v.string_in(
            "status",
            true,
            &["running", "success", "failed", "canceled"],
        );
        assert_eq!(
            v.finish().unwrap_err(),
            "environment is missing, environment is empty, sha is missing, sha is empty, ref is missing, ref is empty, tag is missing, status is missing, status does not have a valid value"
        );
    }

    #[test]
    fn coercions() {
        let cases: &[(&str, Result<Option<bool>, ()>)] = &[
            ("true", Ok(Some(true))),
            ("FALSE", Ok(Some(false))),
            ("1", Ok(Some(true))),
            ("off", Ok(Some(false))),
            ("maybe", Err(())),
            ("", Ok(None)),
        ];
        for (s, want) in cases {
            assert_eq!(coerce_bool(&PVal::Str(s.to_string())), *want, "{s}");
        }
        assert_eq!(coerce_int(&PVal::Str("12".into())), Ok(Some(12)));
        assert!(coerce_int(&PVal::Str("1.5".into())).is_err());
        assert!(coerce_int(&PVal::Str("abc".into())).is_err());
    }

    #[test]
    fn datetimes() {
        for s in [
            "2019-03-15T08:00:00Z",
            "2019-03-15T10:00:00+02:00",
            "2019-03-15T08:00:00.000Z",
            "2019-03-15 08:00:00",
            "2019-03-15T08:00:00",
        ] {
            assert_eq!(
                parse_datetime(s).unwrap().to_rfc3339(),
                "2019-03-15T08:00:00+00:00",
                "{s}"
            );
        }
        assert!(parse_datetime("2019-03-15").is_some());
        assert!(parse_datetime("yesterday").is_none());
    }

    #[test]
    fn arrays_and_multipart() {
        let p = Params::from_query("status[]=a&status[]=b&x=1");
        assert_eq!(
            p.get("status"),
            Some(&PVal::Array(vec![
                PVal::Str("a".into()),
                PVal::Str("b".into())
            ]))
        );
        let mut p = Params::default();
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\nsuccess\r\n--XyZ--\r\n";
        p.merge_body("multipart/form-data; boundary=XyZ", body.as_bytes())
            .unwrap();
        assert_eq!(p.get_str("status"), Some("success"));
    }
}

//! Just enough Kubernetes protobuf to accept kubectl's typed generators (`kubectl create
//! namespace|configmap|secret|serviceaccount`), which send `application/vnd.kubernetes.protobuf`
//! bodies. Responses stay JSON (client-go decodes by the response Content-Type).
//!
//! Wire format: the magic `k8s\0`, then `runtime.Unknown{typeMeta=1{apiVersion=1,kind=2},
//! raw=2}`, where `raw` is the typed message. Field numbers are from `generated.proto` of
//! k8s.io/api and apimachinery.

use crate::b64;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        out |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

/// Parse one message into `(field number, value)` pairs in wire order.
fn fields(b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let tag = varint(b, &mut i)?;
        let (num, wt) = (tag >> 3, tag & 7);
        match wt {
            0 => out.push((num, Field::Varint(varint(b, &mut i)?))),
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).ok()?;
                let end = i.checked_add(len).filter(|e| *e <= b.len())?;
                out.push((num, Field::Bytes(&b[i..end])));
                i = end;
            }
            1 => i += 8,
            5 => i += 4,
            _ => return None,
        }
    }
    Some(out)
}

fn string(f: &Field) -> Option<String> {
    match f {
        Field::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Field::Varint(_) => None,
    }
}

fn bytes<'a>(f: &Field<'a>) -> Option<&'a [u8]> {
    match f {
        Field::Bytes(b) => Some(b),
        Field::Varint(_) => None,
    }
}

/// A `map<string, V>` entry message (key = 1, value = 2).
fn map_entry(b: &[u8], value_as_base64: bool) -> Option<(String, Value)> {
    let fs = fields(b)?;
    let mut k = String::new();
    let mut v = Value::String(String::new());
    for (n, f) in &fs {
        match n {
            1 => k = string(f)?,
            2 if value_as_base64 => v = json!(b64::encode(bytes(f)?)),
            2 => v = json!(string(f)?),
            _ => {}
        }
    }
    Some((k, v))
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, f) in fields(b)? {
        match n {
            1 => {
                let v = string(&f)?;
                if !v.is_empty() {
                    m.insert("name".into(), json!(v));
                }
            }
            2 => {
                let v = string(&f)?;
                if !v.is_empty() {
                    m.insert("generateName".into(), json!(v));
                }
            }
            3 => {
                let v = string(&f)?;
                if !v.is_empty() {
                    m.insert("namespace".into(), json!(v));
                }
            }
            11 => {
                let (k, v) = map_entry(bytes(&f)?, false)?;
                labels.insert(k, v);
            }
            12 => {
                let (k, v) = map_entry(bytes(&f)?, false)?;
                annotations.insert(k, v);
            }
            14 => finalizers.push(json!(string(&f)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(m))
}

/// Decode a protobuf body of a supported kind into its JSON form; `None` if unsupported.
pub fn decode(body: &[u8]) -> Option<Value> {
    let rest = body.strip_prefix(MAGIC)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(rest)? {
        match n {
            1 => {
                for (tn, tf) in fields(bytes(&f)?)? {
                    match tn {
                        1 => api_version = string(&tf)?,
                        2 => kind = string(&tf)?,
                        _ => {}
                    }
                }
            }
            2 => raw = bytes(&f)?,
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let mut data = Map::new();
    let mut binary = Map::new();
    let mut string_data = Map::new();
    for (n, f) in fields(raw)? {
        match (kind.as_str(), n) {
            (_, 1) => {
                obj.insert("metadata".into(), object_meta(bytes(&f)?)?);
            }
            ("ConfigMap", 2) => {
                let (k, v) = map_entry(bytes(&f)?, false)?;
                data.insert(k, v);
            }
            ("ConfigMap", 3) => {
                let (k, v) = map_entry(bytes(&f)?, true)?;
                binary.insert(k, v);
            }
            ("ConfigMap", 4) | ("Secret", 5) => {
                if let Field::Varint(v) = f {
                    obj.insert("immutable".into(), json!(v != 0));
                }
            }
            ("Secret", 2) => {
                let (k, v) = map_entry(bytes(&f)?, true)?;
                data.insert(k, v);
            }
            ("Secret", 3) => {
                let t = string(&f)?;
                if !t.is_empty() {
                    obj.insert("type".into(), json!(t));
                }
            }
            ("Secret", 4) => {
                let (k, v) = map_entry(bytes(&f)?, false)?;
                string_data.insert(k, v);
            }
            ("Namespace" | "ServiceAccount", _) => {}
            _ => return None,
        }
    }
    if !matches!(
        kind.as_str(),
        "ConfigMap" | "Secret" | "Namespace" | "ServiceAccount"
    ) {
        return None;
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), Value::Object(binary));
    }
    if !string_data.is_empty() {
        obj.insert("stringData".into(), Value::Object(string_data));
    }
    Some(Value::Object(obj))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ld(field: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_a_configmap() {
        let meta = [
            ld(1, b"cfg"),
            ld(11, &[ld(1, b"app"), ld(2, b"x")].concat()),
        ]
        .concat();
        let raw = [ld(1, &meta), ld(2, &[ld(1, b"k"), ld(2, b"v")].concat())].concat();
        let tm = [ld(1, b"v1"), ld(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"app": "x"}}, "data": {"k": "v"}})
        );
    }
}

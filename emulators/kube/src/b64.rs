//! Minimal base64 (standard alphabet, padded): Secret `stringData` → `data`, kubeconfig CA data.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn valid(s: &str) -> bool {
    let s = s.trim_end_matches('=');
    s.bytes().all(|c| ALPHABET.contains(&c))
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes() {
        assert_eq!(super::encode(b"hello"), "aGVsbG8=");
        assert_eq!(super::encode(b"hi"), "aGk=");
        assert_eq!(super::encode(b"abc"), "YWJj");
    }
}

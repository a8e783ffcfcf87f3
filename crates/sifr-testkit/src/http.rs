//! The head of one HTTP/1.1 request, for the small servers the registry tests run in-process
//! (a fake registry, a token issuer) of the `oci` and CLI tests.

use std::collections::HashMap;
use std::io::BufRead;

/// A request line and its headers (names lower-cased).
pub struct Head {
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    pub headers: HashMap<String, String>,
}

/// Read up to and including the empty line that ends the head.
pub fn read_head(reader: &mut impl BufRead) -> std::io::Result<Head> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Ok(Head {
        method,
        target,
        headers,
    })
}

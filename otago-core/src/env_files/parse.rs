//! Parsing: Node 20.20's `Dotenv::ParseContent` (what `util.parseEnv` runs), and the key
//! order of a JavaScript object.

use std::collections::{BTreeMap, HashMap};

/// Parses like Node's `util.parseEnv`: raw (untrimmed) keys in byte order, with value and line.
pub(super) fn node_parse_env(contents: &str) -> BTreeMap<String, (String, usize)> {
    let text: String = contents.chars().filter(|&c| c != '\r').collect();
    let newlines: Vec<usize> = text.match_indices('\n').map(|(at, _)| at).collect();
    let line_of = |at: usize| newlines.partition_point(|&newline| newline < at) + 1;
    let mut store = BTreeMap::new();
    let (mut start, mut end) = trim_spaces(&text, 0, text.len());

    while start < end {
        let content = &text[start..end];
        if content.starts_with(['\n', '#'])
            && let Some(newline) = content.find('\n')
        {
            start += newline + 1;
            continue;
        }
        let Some(equal) = content.find('=') else {
            match content.find('\n') {
                Some(newline) => start += newline + 1,
                None => start = end,
            }
            continue;
        };
        let line = line_of(start + equal);
        let (key_start, key_end) = trim_spaces(&text, start, start + equal);
        (start, end) = trim_spaces(&text, start + equal + 1, end);
        let key = match &text[key_start..key_end] {
            // Node 20.20 trims a key of only spaces one byte too far and keeps the newline
            // before it, which `@expo/env` then trims to an empty name.
            "" if equal > 0 => "\n",
            key => key,
        };
        if key.is_empty() {
            break;
        }
        let key = key.strip_prefix("export ").unwrap_or(key).to_owned();
        let content = &text[start..end];
        let Some(&first) = content.as_bytes().first() else {
            store.insert(key, (String::new(), line));
            break;
        };

        if matches!(first, b'"' | b'\'' | b'`') {
            if let Some(close) = content[1..].find(char::from(first)).map(|at| at + 1) {
                let inner = &content[1..close];
                let value = if first == b'"' {
                    inner.replace("\\n", "\n")
                } else {
                    inner.to_owned()
                };
                store.insert(key, (value, line));
                match content[close + 1..].find('\n') {
                    Some(newline) => start += close + 1 + newline + 1,
                    None => start = end,
                }
            } else if let Some(newline) = content.find('\n') {
                // No closing quote: the rest of the line, opening quote included.
                store.insert(key, (content[..newline].to_owned(), line));
                start += newline + 1;
            }
            // No closing quote and no newline: nothing is stored and the loop looks for
            // another `=` in the same text, as Node does.
            continue;
        }

        let (value, next) = match content.find('\n') {
            Some(newline) => (&content[..newline], start + newline + 1),
            None => (content, end),
        };
        let value = value.find('#').map_or(value, |hash| &value[..hash]);
        store.insert(key, (value.trim_matches(' ').to_owned(), line));
        start = next;
    }
    store
}

/// Narrows `start..end` of `text` past leading and trailing spaces (not other whitespace).
fn trim_spaces(text: &str, mut start: usize, mut end: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    while start < end && bytes.get(start) == Some(&b' ') {
        start += 1;
    }
    while end > start && bytes.get(end - 1) == Some(&b' ') {
        end -= 1;
    }
    (start, end)
}

/// Whitespace as JavaScript's `String.prototype.trim` sees it.
pub(super) fn is_js_space(c: char) -> bool {
    const WIDE: [char; 8] = [
        '\u{a0}', '\u{1680}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
        '\u{feff}',
    ];
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{2000}'..='\u{200a}'
    ) || WIDE.contains(&c)
}

/// A JavaScript object's key order: array indices ascending, then other keys by first insertion.
pub(super) struct JsObject<V> {
    entries: Vec<(String, V)>,
    positions: HashMap<String, usize>,
}

impl<V> Default for JsObject<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            positions: HashMap::new(),
        }
    }
}

impl<V> JsObject<V> {
    pub(super) fn insert(&mut self, key: String, value: V) {
        if let Some(entry) = self
            .positions
            .get(&key)
            .and_then(|&at| self.entries.get_mut(at))
        {
            entry.1 = value;
        } else {
            self.positions.insert(key.clone(), self.entries.len());
            self.entries.push((key, value));
        }
    }

    pub(super) fn into_ordered(mut self) -> Vec<(String, V)> {
        self.entries
            .sort_by_key(|(key, _)| array_index(key).map_or((1, 0), |index| (0, index)));
        self.entries
    }
}

/// The value of a key that JavaScript treats as an array index (`0` to `2^32 - 2`).
fn array_index(key: &str) -> Option<u32> {
    let canonical = key == "0" || (!key.starts_with('0') && !key.is_empty());
    if !canonical || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|&index| index != u32::MAX)
}

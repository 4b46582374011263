//! Content negotiation: which of the three formats the server sends an `accept` header allows.

use super::{ResponseFormat, bad};
use crate::{Error, Result};

/// The formats in order of preference when q-values tie.
const FORMATS: [ResponseFormat; 3] = [
    ResponseFormat::Multipart,
    ResponseFormat::ExpoJson,
    ResponseFormat::Json,
];

const SEND_INSTEAD: &str = "send `accept: multipart/mixed,application/expo+json,application/json`";

/// A q-value in thousandths: `q=0.5` is 500, no `q` is 1000.
fn parse_q(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// `text` split at each `separator` (an ASCII byte). A byte scan: unlike `str::split`, no
/// search is set up per piece, and these values are a few dozen bytes.
fn split_at(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        let (piece, after) = split_once_at(current, separator)
            .map_or((current, None), |(piece, after)| (piece, Some(after)));
        rest = after;
        Some(piece)
    })
}

/// `text` before and after its first `separator` (an ASCII byte), by a byte scan.
fn split_once_at(text: &str, separator: u8) -> Option<(&str, &str)> {
    let at = text.bytes().position(|b| b == separator)?;
    Some((&text[..at], &text[at + 1..]))
}

/// How specifically a media range, split at its `/`, matches a format (0 = not at all) — `*/*` 1,
/// `type/*` 2, exact 3.
/// Media types compare case-insensitively.
fn specificity((range_type, range_subtype): (&str, &str), format: ResponseFormat) -> u8 {
    let (media_type, subtype) = match format {
        ResponseFormat::Multipart => ("multipart", "mixed"),
        ResponseFormat::ExpoJson => ("application", "expo+json"),
        ResponseFormat::Json => ("application", "json"),
    };
    if range_type.eq_ignore_ascii_case(media_type) {
        if range_subtype.eq_ignore_ascii_case(subtype) {
            3
        } else {
            u8::from(range_subtype == "*") * 2
        }
    } else {
        u8::from(range_type == "*" && range_subtype == "*")
    }
}

/// The preferred format for a manifest and whether multipart is acceptable at all.
/// An absent or empty `accept` allows everything (multipart is chosen).
///
/// # Errors
/// [`Error::BadHeader`] with 400 for a malformed media range or q-value, 406 when none of
/// the three formats is acceptable.
pub(super) fn negotiate(accept: Option<&str>) -> Result<(ResponseFormat, bool)> {
    let accept = accept.unwrap_or_default();
    if accept.is_empty() {
        return Ok((ResponseFormat::Multipart, true));
    }
    // For each format: (specificity of the best match so far, its q in thousandths).
    let mut best = [(0u8, 0u16); FORMATS.len()];
    for element in split_at(accept, b',') {
        let mut pieces = split_at(element, b';');
        let range = pieces.next().unwrap_or_default().trim_ascii();
        if range.is_empty() {
            continue;
        }
        let Some(range) = split_once_at(range, b'/') else {
            return Err(bad(
                "accept",
                format!(
                    "`{}` is not a media range like `type/subtype`; {SEND_INSTEAD}",
                    range.escape_debug()
                ),
            ));
        };
        let mut q = 1000;
        for parameter in pieces {
            let (name, value) = split_once_at(parameter, b'=').unwrap_or((parameter, ""));
            if name.trim_ascii().eq_ignore_ascii_case("q") {
                q = parse_q(value.trim_ascii()).ok_or_else(|| {
                    bad("accept", format!("`{}` is not a q-value between 0 and 1 with at most 3 decimals; {SEND_INSTEAD}", value.trim_ascii().escape_debug()))
                })?;
            }
        }
        for (slot, &format) in best.iter_mut().zip(&FORMATS) {
            let specificity = specificity(range, format);
            // A more specific range overrides; equally specific ones keep the highest q.
            if specificity > slot.0 || (specificity == slot.0 && specificity > 0 && q > slot.1) {
                *slot = (specificity, q);
            }
        }
    }
    let multipart = best[0].1 > 0;
    // Highest q wins; on ties the earlier (more preferred) format stays.
    let chosen = FORMATS.iter().zip(best).filter(|(_, (_, q))| *q > 0).fold(
        None,
        |chosen: Option<(ResponseFormat, u16)>, (&format, (_, q))| match chosen {
            Some((_, best_q)) if best_q >= q => chosen,
            _ => Some((format, q)),
        },
    );
    match chosen {
        Some((format, _)) => Ok((format, multipart)),
        None => Err(Error::BadHeader {
            header: "accept",
            problem: format!(
                "none of multipart/mixed, application/expo+json or application/json is acceptable; {SEND_INSTEAD}"
            ),
            status: 406,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(accept: &str) -> Result<(ResponseFormat, bool)> {
        negotiate(Some(accept))
    }

    #[test]
    fn splitting_keeps_empty_pieces_like_str_split() {
        for text in ["", ",", "a", "a,b", ",a,,b,", "é,ü;x"] {
            let ours: Vec<&str> = split_at(text, b',').collect();
            let std: Vec<&str> = text.split(',').collect();
            assert_eq!(ours, std, "{text:?}");
            assert_eq!(split_once_at(text, b','), text.split_once(','), "{text:?}");
        }
    }

    #[test]
    fn q_values_parse_in_thousandths() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.005"), Some(5));
        assert_eq!(parse_q("0"), Some(0));
        for bad in ["1.5", "2", "0.1234", "-0", "", "a", "0.x"] {
            assert_eq!(parse_q(bad), None, "{bad}");
        }
    }

    #[test]
    fn multipart_is_preferred_on_ties() {
        assert_eq!(negotiate(None).unwrap(), (ResponseFormat::Multipart, true));
        assert_eq!(format("*/*").unwrap(), (ResponseFormat::Multipart, true));
        assert_eq!(
            format("application/expo+json, application/json, multipart/mixed")
                .unwrap()
                .0,
            ResponseFormat::Multipart
        );
        assert_eq!(
            format("multipart/mixed,application/expo+json,application/json")
                .unwrap()
                .0,
            ResponseFormat::Multipart
        );
    }

    #[test]
    fn q_values_are_honoured() {
        assert_eq!(
            format("application/json, multipart/mixed;q=0.5").unwrap(),
            (ResponseFormat::Json, true)
        );
        assert_eq!(
            format("application/json, multipart/mixed;q=0").unwrap(),
            (ResponseFormat::Json, false)
        );
        assert_eq!(
            format("application/*, application/json;q=0").unwrap(),
            (ResponseFormat::ExpoJson, false)
        );
        assert_eq!(
            format("*/*;q=0.1, application/expo+json").unwrap(),
            (ResponseFormat::ExpoJson, true)
        );
        assert_eq!(
            format("*/*, multipart/mixed;q=0").unwrap(),
            (ResponseFormat::ExpoJson, false)
        );
        assert_eq!(
            format("multipart/*;Q=0.9, text/html").unwrap(),
            (ResponseFormat::Multipart, true)
        );
    }

    #[test]
    fn media_ranges_match_whatever_their_case() {
        assert_eq!(
            format("Application/JSON, MULTIPART/Mixed;q=0").unwrap(),
            (ResponseFormat::Json, false)
        );
        assert_eq!(
            format("APPLICATION/*").unwrap(),
            (ResponseFormat::ExpoJson, false)
        );
    }

    #[test]
    fn nothing_acceptable_is_406_and_garbage_is_400() {
        for accept in [
            "text/html",
            "multipart/mixed;q=0",
            "*/*;q=0",
            "image/*, text/plain",
        ] {
            let err = format(accept).unwrap_err();
            assert_eq!(err.http_status(), 406, "{accept}");
            assert!(
                err.to_string().contains("send `accept: multipart/mixed"),
                "{err}"
            );
        }
        assert_eq!(format("html").unwrap_err().http_status(), 400);
        assert_eq!(
            format("multipart/mixed;q=2").unwrap_err().http_status(),
            400
        );
    }
}

//! Expansion: `@expo/env` 2.6 `parse.ts`, a port of `dotenv-expand` 11.0.7.

use std::collections::HashMap;

use super::{Origin, ProcessEnv};
use crate::{Error, Result};

/// Deepest chain of `$` references followed before giving up.
const MAX_EXPANSION_DEPTH: usize = 64;
/// Most bytes expansion may produce for all variables together.
const MAX_EXPANSION_BYTES: usize = 16 << 20;

/// Why expansion stopped.
enum Runaway {
    TooDeep,
    TooLarge,
}

/// Expands merged file variables against the process environment.
pub(super) struct Expander<'p, 'a> {
    process: &'p ProcessEnv<'a>,
    default_program: Vec<Op>,
    budget: usize,
}

impl<'p, 'a> Expander<'p, 'a> {
    pub(super) fn new(process: &'p ProcessEnv<'a>) -> Self {
        Self {
            process,
            default_program: default_value_program(),
            budget: MAX_EXPANSION_BYTES,
        }
    }

    /// Expands every variable in order; earlier results are visible to later ones.
    pub(super) fn expand(mut self, input: Vec<(String, Origin)>) -> Result<Vec<(String, Origin)>> {
        let mut output = input.clone();
        let positions: HashMap<String, usize> = input
            .iter()
            .enumerate()
            .map(|(at, (key, _))| (key.clone(), at))
            .collect();
        for (at, (key, origin)) in input.iter().enumerate() {
            let raw = &origin.value;
            let value = match self.process.get(key) {
                Some(process_value) if process_value != raw.as_str() => Ok(raw.clone()),
                _ => self.interpolate(raw, key, &output, &positions, 0),
            };
            let value = value.map_err(|runaway| expansion_error(key, origin, &runaway))?;
            if let Some((_, slot)) = output.get_mut(at) {
                slot.value = value.replace("\\$", "$");
            }
        }
        Ok(output)
    }

    /// Replaces every `$` reference in `value`; `source_key` is the variable being expanded.
    fn interpolate(
        &mut self,
        value: &str,
        source_key: &str,
        env: &[(String, Origin)],
        positions: &HashMap<String, usize>,
        depth: usize,
    ) -> Result<String, Runaway> {
        if depth > MAX_EXPANSION_DEPTH {
            return Err(Runaway::TooDeep);
        }
        let lookup = |key: &str| {
            positions
                .get(key)
                .and_then(|&at| env.get(at))
                .map(|(_, o)| o.value.as_str())
        };
        let mut result = String::new();
        let mut done = 0;
        while let Some(found) = find_reference(value, done, &self.default_program) {
            self.spend(found.start - done)?;
            result.push_str(&value[done..found.start]);
            let replacement = if found.escaped {
                value[found.start + 1..found.end].to_owned()
            } else if let Some(process_value) =
                self.process.get(found.key).filter(|v| !v.is_empty())
            {
                if lookup(found.key) == Some(process_value) {
                    process_value.to_owned()
                } else {
                    self.interpolate(process_value, found.key, env, positions, depth + 1)?
                }
            } else if let Some(file_value) =
                lookup(found.key).filter(|v| !v.is_empty() && found.key != source_key)
            {
                self.interpolate(file_value, found.key, env, positions, depth + 1)?
            } else {
                match found.default {
                    Some(default) if default.starts_with('$') => {
                        self.interpolate(default, found.key, env, positions, depth + 1)?
                    }
                    Some(default) => default.to_owned(),
                    None => String::new(),
                }
            };
            self.spend(replacement.len())?;
            result.push_str(&replacement);
            done = found.end;
        }
        self.spend(value.len() - done)?;
        result.push_str(&value[done..]);
        Ok(result)
    }

    fn spend(&mut self, bytes: usize) -> Result<(), Runaway> {
        self.budget = self.budget.checked_sub(bytes).ok_or(Runaway::TooLarge)?;
        Ok(())
    }
}

fn expansion_error(key: &str, origin: &Origin, runaway: &Runaway) -> Error {
    let reason = match runaway {
        Runaway::TooDeep => format!(
            "cannot expand `{key}`: its `$` references form a cycle or nest more than \
             {MAX_EXPANSION_DEPTH} deep (like A=$B with B=$A); break the cycle, or write `\\$` for a literal dollar"
        ),
        Runaway::TooLarge => format!(
            "cannot expand `{key}`: the expanded variables exceed {} MiB; check for references \
             that repeat each other (like A=$B$B with B=$C$C)",
            MAX_EXPANSION_BYTES >> 20
        ),
    };
    Error::EnvFile {
        file: origin.file.clone(),
        line: origin.line,
        reason,
    }
}

/// One match of dotenv-expand's
/// `/(\\)?(\$)(?!\()(\{?)([\w.]+)(?::?-(DEFAULT))?(\}?)/g` in a value.
struct Reference<'v> {
    start: usize,
    end: usize,
    escaped: bool,
    key: &'v str,
    default: Option<&'v str>,
}

/// The next reference at or after byte `from`.
fn find_reference<'v>(
    value: &'v str,
    from: usize,
    default_program: &[Op],
) -> Option<Reference<'v>> {
    let bytes = value.as_bytes();
    (from..bytes.len()).find_map(|start| {
        let (escaped, dollar) = match (bytes.get(start), bytes.get(start + 1)) {
            (Some(b'\\'), Some(b'$')) => (true, start + 1),
            (Some(b'$'), _) => (false, start),
            _ => return None,
        };
        let mut at = dollar + 1;
        if bytes.get(at) == Some(&b'(') {
            return None;
        }
        if bytes.get(at) == Some(&b'{') {
            at += 1;
        }
        let key_start = at;
        while bytes
            .get(at)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            at += 1;
        }
        if at == key_start {
            return None;
        }
        let key = value.get(key_start..at)?;
        let operator = match (bytes.get(at), bytes.get(at + 1)) {
            (Some(b':'), Some(b'-')) => Some(at + 2),
            (Some(b'-'), _) => Some(at + 1),
            _ => None,
        };
        let mut default = None;
        if let Some(default_start) = operator
            && let Some(default_end) = run_program(default_program, bytes, default_start)
        {
            default = value.get(default_start..default_end);
            at = default_end;
        }
        if bytes.get(at) == Some(&b'}') {
            at += 1;
        }
        Some(Reference {
            start,
            end: at,
            escaped,
            key,
            default,
        })
    })
}

/// An instruction of the tiny backtracking matcher for a default value.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Match this byte.
    Byte(u8),
    /// Match any byte but `}`.
    NotBrace,
    /// Try the first target, then the second.
    Split(usize, usize),
    /// Continue at the target.
    Jump(usize),
    /// Success.
    Match,
}

/// The default value pattern `(?:G3|[^}])+`, where `G1 = \$\{[^}]*\}` and
/// `Gn = \$\{(?:G(n-1)|[^}])*\}`: up to three levels of nested `${…}`.
fn default_value_program() -> Vec<Op> {
    let mut program = vec![Op::Split(0, 0)];
    let group = program.len();
    emit_group(&mut program, 3);
    let jump = program.len();
    program.push(Op::Jump(0));
    let single = program.len();
    program.push(Op::NotBrace);
    let repeat = program.len();
    program.extend([Op::Split(0, repeat + 1), Op::Match]);
    program[0] = Op::Split(group, single);
    program[jump] = Op::Jump(repeat);
    program[repeat] = Op::Split(0, repeat + 1);
    program
}

/// Appends `Gn` (see [`default_value_program`]).
fn emit_group(program: &mut Vec<Op>, level: usize) {
    program.extend([Op::Byte(b'$'), Op::Byte(b'{')]);
    let repeat = program.len();
    program.push(Op::Split(0, 0));
    let body = program.len();
    if level > 1 {
        let choice = program.len();
        program.push(Op::Split(0, 0));
        let nested = program.len();
        emit_group(program, level - 1);
        program.push(Op::Jump(repeat));
        let single = program.len();
        program.extend([Op::NotBrace, Op::Jump(repeat)]);
        program[choice] = Op::Split(nested, single);
    } else {
        program.extend([Op::NotBrace, Op::Jump(repeat)]);
    }
    let exit = program.len();
    program.push(Op::Byte(b'}'));
    program[repeat] = Op::Split(body, exit);
}

/// Runs `program` on `bytes` from `start`, exploring alternatives in the order a JavaScript
/// regex does; returns where the first successful path ends. States already explored are not
/// explored again, which keeps the run linear in `program.len() × bytes.len()`.
fn run_program(program: &[Op], bytes: &[u8], start: usize) -> Option<usize> {
    let width = bytes.len() + 1;
    let mut seen = vec![0u64; (program.len() * width).div_ceil(64)];
    let mut stack = vec![(0usize, start)];
    while let Some((mut pc, mut at)) = stack.pop() {
        loop {
            let state = pc * width + at;
            let (word, bit) = (state / 64, 1u64 << (state % 64));
            match seen.get_mut(word) {
                Some(slot) if *slot & bit == 0 => *slot |= bit,
                _ => break,
            }
            match program.get(pc)? {
                Op::Byte(expected) if bytes.get(at) == Some(expected) => {
                    (pc, at) = (pc + 1, at + 1)
                }
                Op::NotBrace if bytes.get(at).is_some_and(|&b| b != b'}') => {
                    (pc, at) = (pc + 1, at + 1)
                }
                Op::Byte(_) | Op::NotBrace => break,
                Op::Split(first, second) => {
                    stack.push((*second, at));
                    pc = *first;
                }
                Op::Jump(target) => pc = *target,
                Op::Match => return Some(at),
            }
        }
    }
    None
}

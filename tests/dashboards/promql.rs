//! Just enough of PromQL and of the Prometheus text format for tests/dashboards.rs: the
//! selectors of an expression (metric name and label matchers), the labels named by
//! `by`/`without`/`on`/`ignoring`/`group_left`/`group_right`, bracket balance, and the
//! families, samples and labels of a `/metrics` answer. No regex crate: hand-written scanners.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

/// One label matcher of a selector: `key op "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// Label name.
    pub key: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    /// The value as written (unescaped).
    pub value: String,
}

/// A metric selector in an expression: `name{matchers}` (matchers may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Metric name.
    pub metric: String,
    /// Its label matchers.
    pub matchers: Vec<Matcher>,
}

/// What an expression uses: selectors and grouping/matching labels.
#[derive(Debug, Default)]
pub struct Uses {
    /// Every selector whose name starts with `oneha_`, or is `up`.
    pub selectors: Vec<Selector>,
    /// Labels in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`,
    /// `group_right (...)`.
    pub grouping: Vec<String>,
}

const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Index just past the string literal starting at `i` (a quote), or an error if unclosed.
fn skip_string(b: &[u8], i: usize) -> Result<usize, String> {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'\\' && q != b'`' {
            j += 2;
            continue;
        }
        if b[j] == q {
            return Ok(j + 1);
        }
        j += 1;
    }
    Err(format!("unclosed string literal at byte {i}"))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn unescape(s: &str) -> String {
    let mut o = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => o.push('\n'),
                Some(c) => o.push(c),
                None => {}
            }
        } else {
            o.push(c);
        }
    }
    o
}

/// Parses `{k="v", k2=~"w"}` starting at `i` (the brace); returns the matchers and the index
/// past the closing brace.
fn matchers(b: &[u8], mut i: usize) -> Result<(Vec<Matcher>, usize), String> {
    let mut out = Vec::new();
    i += 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            None => return Err("unclosed {".into()),
            Some(b'}') => return Ok((out, i + 1)),
            Some(b',') => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let k0 = i;
        while i < b.len() && ident_char(b[i]) {
            i += 1;
        }
        if k0 == i {
            return Err(format!("label name expected at byte {i}"));
        }
        let key = String::from_utf8_lossy(&b[k0..i]).into_owned();
        i = skip_ws(b, i);
        let o0 = i;
        while i < b.len() && matches!(b[i], b'=' | b'!' | b'~') {
            i += 1;
        }
        let op = String::from_utf8_lossy(&b[o0..i]).into_owned();
        if !["=", "!=", "=~", "!~"].contains(&op.as_str()) {
            return Err(format!("bad matcher operator {op:?} after {key}"));
        }
        i = skip_ws(b, i);
        if !matches!(b.get(i), Some(b'"' | b'\'' | b'`')) {
            return Err(format!("quoted value expected after {key}{op}"));
        }
        let end = skip_string(b, i)?;
        let value = unescape(&String::from_utf8_lossy(&b[i + 1..end - 1]));
        out.push(Matcher { key, op, value });
        i = end;
    }
}

/// Parses `(a, b, c)` at `i` (after optional spaces); returns the names and the index past `)`.
fn label_list(b: &[u8], i: usize) -> Option<(Vec<String>, usize)> {
    let mut i = skip_ws(b, i);
    if b.get(i) != Some(&b'(') {
        return None;
    }
    let close = i + b[i..].iter().position(|&c| c == b')')?;
    let names = String::from_utf8_lossy(&b[i + 1..close])
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    i = close + 1;
    Some((names, i))
}

/// The selectors and grouping labels of `expr`. Errors on an unclosed string or brace.
pub fn uses(expr: &str) -> Result<Uses, String> {
    let b = expr.as_bytes();
    let mut u = Uses::default();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            i = skip_string(b, i)?;
            continue;
        }
        let prev_ok = i == 0 || !(ident_char(b[i - 1]) || b[i - 1] == b'$' || b[i - 1] == b'.');
        if !(ident_start(c) && prev_ok) {
            i += 1;
            continue;
        }
        let s = i;
        while i < b.len() && ident_char(b[i]) {
            i += 1;
        }
        let word = String::from_utf8_lossy(&b[s..i]).into_owned();
        if GROUPING.contains(&word.as_str()) {
            if let Some((names, next)) = label_list(b, i) {
                u.grouping.extend(names);
                i = next;
            }
            continue;
        }
        let next = skip_ws(b, i);
        if word.starts_with("oneha_") || word == "up" {
            if b.get(next) == Some(&b'(') {
                return Err(format!("{word} used as a function"));
            }
            let mut sel = Selector {
                metric: word,
                matchers: Vec::new(),
            };
            if b.get(next) == Some(&b'{') {
                let (m, end) = matchers(b, next)?;
                sel.matchers = m;
                i = end;
            }
            u.selectors.push(sel);
        } else if b.get(next) == Some(&b'{') {
            return Err(format!("selector of an unexpected metric {word:?}"));
        }
    }
    Ok(u)
}

/// Brackets `()`, `[]`, `{}` balanced and properly nested outside string literals, and every
/// string literal closed.
pub fn balanced(expr: &str) -> Result<(), String> {
    let b = expr.as_bytes();
    let mut stack = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i)?;
                continue;
            }
            c @ (b'(' | b'[' | b'{') => stack.push((c, i)),
            c @ (b')' | b']' | b'}') => {
                let want = match c {
                    b')' => b'(',
                    b']' => b'[',
                    _ => b'{',
                };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    Some((open, at)) => {
                        return Err(format!(
                            "{} at byte {i} closes {} opened at byte {at}",
                            c as char, open as char
                        ));
                    }
                    None => return Err(format!("{} at byte {i} closes nothing", c as char)),
                }
            }
            _ => {}
        }
        i += 1;
    }
    match stack.pop() {
        Some((open, at)) => Err(format!(
            "{} opened at byte {at} is never closed",
            open as char
        )),
        None => Ok(()),
    }
}

/// `label_values(SELECTOR, LABEL)` (a Grafana variable query): the selector part and the label.
pub fn label_values(query: &str) -> Option<(String, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (sel, label) = inner.rsplit_once(',')?;
    Some((sel.trim().to_string(), label.trim().to_string()))
}

/// The `{{name}}` placeholders of a legend format or a title.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(s) = rest.find("{{") {
        let Some(e) = rest[s..].find("}}") else { break };
        out.push(rest[s + 2..s + e].trim().to_string());
        rest = &rest[s + e + 2..];
    }
    out
}

/// A `/metrics` answer: families with their type, and for every sample name the labels seen
/// with the values each took.
#[derive(Debug, Default, Clone)]
pub struct Exposition {
    /// `# TYPE` lines: family name -> type.
    pub families: BTreeMap<String, String>,
    /// Sample name -> label name -> values seen.
    pub samples: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Exposition {
    /// Parses the text format (version 0.0.4).
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut e = Exposition::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or(format!("bad TYPE: {line}"))?;
                e.families.insert(name.into(), kind.into());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let b = line.as_bytes();
            let end = b
                .iter()
                .position(|&c| c == b'{' || c == b' ')
                .ok_or(format!("bad sample: {line}"))?;
            let name = line[..end].to_string();
            let labels = e.samples.entry(name).or_default();
            if b[end] == b'{' {
                let (ms, _) = matchers(b, end).map_err(|err| format!("{err}: {line}"))?;
                for m in ms {
                    labels.entry(m.key).or_default().insert(m.value);
                }
            }
        }
        Ok(e)
    }

    /// Whether `name` is a family or a sample name (`_bucket`, `_sum`, `_count` of a histogram
    /// are sample names).
    pub fn has(&self, name: &str) -> bool {
        self.families.contains_key(name) || self.samples.contains_key(name)
    }

    /// Label names seen on samples of `name`.
    pub fn labels(&self, name: &str) -> BTreeSet<String> {
        self.samples
            .get(name)
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Values seen for label `label` of `name`.
    pub fn values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.samples
            .get(name)
            .and_then(|l| l.get(label))
            .cloned()
            .unwrap_or_default()
    }

    /// Adds what `other` has (families, samples, labels and values).
    pub fn merge(&mut self, other: &Exposition) {
        for (k, v) in &other.families {
            self.families.insert(k.clone(), v.clone());
        }
        for (name, labels) in &other.samples {
            let mine = self.samples.entry(name.clone()).or_default();
            for (l, vals) in labels {
                mine.entry(l.clone())
                    .or_default()
                    .extend(vals.iter().cloned());
            }
        }
    }
}

/// Whether a matcher value that is a regex (`=~`) can match one of `known`: alternatives of
/// literals, each optionally ending in `.*`. `None`: the regex is beyond this check.
pub fn regex_matches_known(regex: &str, known: &BTreeSet<String>) -> Option<Vec<String>> {
    let mut unmatched = Vec::new();
    for alt in regex.split('|') {
        let (lit, prefix) = match alt.strip_suffix(".*") {
            Some(p) => (p, true),
            None => (alt, false),
        };
        if lit
            .chars()
            .any(|c| "\\^$.[]()*+?{}".contains(c) || c == '|')
        {
            return None;
        }
        let ok = if prefix {
            known.iter().any(|k| k.starts_with(lit))
        } else {
            known.contains(lit)
        };
        if !ok {
            unmatched.push(alt.to_string());
        }
    }
    Some(unmatched)
}

#[test]
fn the_scanner_finds_selectors_and_grouping_labels() {
    let u = uses(
        r#"max by (cluster) (oneha_group_state{job="oneha", state=~"a|b"} * on (instance)
           group_left (cluster) oneha_info{job="oneha"}) == 1 and label_replace(up, "x", "$1",
           "y", "(.*)") > 0 and increase(oneha_x_total[$__rate_interval]) > 0"#,
    )
    .unwrap();
    let names: Vec<&str> = u.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(
        names,
        ["oneha_group_state", "oneha_info", "up", "oneha_x_total"]
    );
    assert_eq!(u.selectors[0].matchers[1].value, "a|b");
    assert_eq!(u.selectors[0].matchers[1].op, "=~");
    assert_eq!(u.grouping, ["cluster", "instance", "cluster"]);
    assert!(
        balanced("sum(rate(x[5m])) / (1 + label_replace(y, \"a\", \"(\", \"b\", \")\"))").is_ok()
    );
    assert!(balanced("sum(rate(x[5m])").is_err());
    assert!(balanced("sum(x{a=\"b\"))").is_err());
    assert!(balanced("x{a=\"b}").is_err());
    assert!(uses("oneha_x{a=\"b\" c}").is_err());
    assert_eq!(
        label_values(r#"label_values(oneha_info{job=~"$job"}, cluster)"#),
        Some((r#"oneha_info{job=~"$job"}"#.into(), "cluster".into()))
    );
    assert_eq!(placeholders("{{node}} to {{ peer }}"), ["node", "peer"]);
    let e = Exposition::parse(
        "# HELP a_b x\n# TYPE a_b gauge\na_b{k=\"v \\\" }\",l=\"w\"} 1\nc_sum 2\n",
    )
    .unwrap();
    assert!(e.has("a_b") && e.has("c_sum") && !e.has("c"));
    assert_eq!(
        e.values("a_b", "k").into_iter().collect::<Vec<_>>(),
        ["v \" }"]
    );
    let known: BTreeSet<String> = ["two-node, x".to_string(), "3 front-ends".into()].into();
    assert_eq!(regex_matches_known("two-node.*", &known), Some(vec![]));
    assert_eq!(
        regex_matches_known("3 front-ends|four", &known),
        Some(vec!["four".into()])
    );
    assert_eq!(regex_matches_known("a[bc]", &known), None);
}

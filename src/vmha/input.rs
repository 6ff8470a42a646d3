//! The hook's input, as OpenNebula's hook manager gives it to `ft/host_error.rb`: with
//! `ARGUMENTS_STDIN=yes` the whole argument string arrives on stdin, space-separated: the
//! base64 of the `<HOST>` element (`$TEMPLATE`), then the flags (`-m -p 5`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::host::HostInfo;

/// Largest stdin accepted (a host template is a few kilobytes).
pub const MAX_INPUT: usize = 4 << 20;

/// What to do with the failed host's VMs (one of `-m`, `-r`, `-d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `-m`: reschedule (`one.vm.action resched`); the scheduler migrates them.
    Migrate,
    /// `-r`: delete and recreate (`one.vm.recover 4`): the disks' state is lost.
    Recreate,
    /// `-d`: delete (`one.vm.recover 3`).
    Delete,
}

impl Mode {
    /// The stock hook's flag.
    pub fn flag(self) -> &'static str {
        match self {
            Mode::Migrate => "-m",
            Mode::Recreate => "-r",
            Mode::Delete => "-d",
        }
    }
}

/// The flags of `ft/host_error.rb`, with its defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    /// `-m`, `-r` or `-d`.
    pub mode: Mode,
    /// `-f`: also SUSPENDED and POWEROFF VMs (every mode, as the docs say).
    pub force: bool,
    /// `-p N`: monitoring intervals to wait for the host to come back (default 2).
    pub pause: u32,
    /// False with `-u`/`--no-fencing`.
    pub fencing: bool,
}

/// The parsed hook input: the host as the template described it, and the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookInput {
    /// The host (from `$TEMPLATE`).
    pub host: HostInfo,
    /// The flags.
    pub flags: Flags,
}

/// Parses the flags (everything after the template). Errors name the flag and what to do.
pub fn parse_flags<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Flags, String> {
    let mut mode = None;
    let mut force = false;
    let mut pause = 2u32;
    let mut fencing = true;
    let mut it = args.into_iter();
    let set_mode = |m: Mode, mode: &mut Option<Mode>| match mode {
        Some(old) if *old != m => Err(format!(
            "{} and {} both given: choose one mode",
            old.flag(),
            m.flag()
        )),
        _ => {
            *mode = Some(m);
            Ok(())
        }
    };
    while let Some(a) = it.next() {
        match a {
            "-m" | "--migrate" => set_mode(Mode::Migrate, &mut mode)?,
            "-r" | "--recreate" => set_mode(Mode::Recreate, &mut mode)?,
            "-d" | "--delete" => set_mode(Mode::Delete, &mut mode)?,
            "-f" | "--force" => force = true,
            "-u" | "--no-fencing" => fencing = false,
            "-p" | "--pause" => {
                let v = it
                    .next()
                    .ok_or("-p needs a number of monitoring intervals, e.g. `-p 5`")?;
                pause = parse_pause(v)?;
            }
            other => {
                if let Some(v) = other.strip_prefix("--pause=") {
                    pause = parse_pause(v)?;
                } else if let Some(v) = other.strip_prefix("-p").filter(|v| !v.is_empty()) {
                    pause = parse_pause(v)?;
                } else {
                    return Err(format!(
                        "unknown argument `{}`: the hook takes -m|-r|-d, -f, -p N, -u",
                        super::sanitize(other, 40)
                    ));
                }
            }
        }
    }
    let mode = mode.ok_or("a mode must be supplied: -m (migrate), -r (recreate) or -d (delete)")?;
    Ok(Flags {
        mode,
        force,
        pause,
        fencing,
    })
}

fn parse_pause(v: &str) -> Result<u32, String> {
    v.parse::<u32>().ok().filter(|n| *n <= 1000).ok_or_else(|| {
        format!(
            "-p takes a whole number of monitoring intervals from 0 to 1000, found `{}`",
            super::sanitize(v, 20)
        )
    })
}

/// Parses the whole argument string (stdin with `ARGUMENTS_STDIN=yes`, or argv joined).
pub fn parse(text: &str) -> Result<HookInput, String> {
    if text.len() > MAX_INPUT {
        return Err(format!(
            "the hook input is {} bytes, more than {MAX_INPUT}: is this a host template?",
            text.len()
        ));
    }
    let mut words = text.split_ascii_whitespace();
    let template = words.next().ok_or(
        "no input: the hook expects `$TEMPLATE -m -p 5` on stdin (ARGUMENTS_STDIN=yes in \
         the hook template)",
    )?;
    let host = decode_template(template)?;
    let flags = parse_flags(words)?;
    Ok(HookInput { host, flags })
}

/// Decodes `$TEMPLATE`: base64 of the `<HOST>` element.
pub fn decode_template(b64: &str) -> Result<HostInfo, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| {
            format!(
                "the first argument is not base64 ({e}); the hook expects `$TEMPLATE` first \
                 (ARGUMENTS=\"$TEMPLATE -m -p 5\")"
            )
        })?;
    let xml = String::from_utf8(raw).map_err(|_| "the host template is not UTF-8 text")?;
    HostInfo::parse(&xml).map_err(|e| format!("the host template is not a valid <HOST>: {e}"))
}

/// Encodes a host document as the hook manager does (strict base64).
pub fn encode_template(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "<HOST><ID>4</ID><NAME>kvm4</NAME><STATE>3</STATE><VMS><ID>10</ID>\
        </VMS><TEMPLATE><FENCE_IP>192.0.2.54</FENCE_IP></TEMPLATE></HOST>";

    #[test]
    fn reads_the_stock_hook_input() {
        let text = format!("{} -m -p 5\n", encode_template(HOST));
        let i = parse(&text).unwrap();
        assert_eq!(i.host.id, 4);
        assert_eq!(
            i.flags,
            Flags {
                mode: Mode::Migrate,
                force: false,
                pause: 5,
                fencing: true
            }
        );
    }

    #[test]
    fn flags_table() {
        let ok: &[(&str, Mode, bool, u32, bool)] = &[
            ("-r", Mode::Recreate, false, 2, true),
            ("-d -f -u", Mode::Delete, true, 2, false),
            ("--migrate --pause 0", Mode::Migrate, false, 0, true),
            ("-m -p3", Mode::Migrate, false, 3, true),
            (
                "-m --pause=7 --no-fencing --force",
                Mode::Migrate,
                true,
                7,
                false,
            ),
            ("-m -m", Mode::Migrate, false, 2, true),
        ];
        for (args, mode, force, pause, fencing) in ok {
            let f = parse_flags(args.split(' ')).unwrap();
            assert_eq!(
                (f.mode, f.force, f.pause, f.fencing),
                (*mode, *force, *pause, *fencing),
                "{args}"
            );
        }
        let bad: &[(&str, &str)] = &[
            ("", "a mode must be supplied"),
            ("-f -p 1", "a mode must be supplied"),
            ("-m -r", "choose one mode"),
            ("-m -p", "-p needs a number"),
            ("-m -p x", "whole number"),
            ("-m -p -1", "whole number"),
            ("-m -p 100000", "whole number"),
            ("-m --evil", "unknown argument `--evil`"),
        ];
        for (args, want) in bad {
            let err = parse_flags(args.split(' ').filter(|s| !s.is_empty())).unwrap_err();
            assert!(err.contains(want), "{args}: {err}");
        }
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "no input"),
            ("   \n".into(), "no input"),
            ("!!!notbase64 -m".into(), "not base64"),
            (
                format!("{} -m", encode_template("<HOST><ID>1</ID>")),
                "not a valid <HOST>",
            ),
            (
                format!("{} -m", encode_template(&HOST[..40])),
                "not a valid <HOST>",
            ),
            (encode_template(HOST), "a mode must be supplied"),
            (
                format!(
                    "{} -m",
                    base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe])
                ),
                "not UTF-8",
            ),
            ("A".repeat(MAX_INPUT + 1), "more than"),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(want), "{}: {err}", &text[..text.len().min(30)]);
        }
    }

    #[test]
    fn control_characters_are_not_echoed() {
        let err = parse_flags(["-m", "\u{1b}]0;pwned\u{7}"]).unwrap_err();
        assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    }
}

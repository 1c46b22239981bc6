//! The settings file: CodeJail's Django `CODE_JAIL` setting, in TOML.
//!
//! ```toml
//! [jails.python]
//! bin = "/usr/bin/python3"
//! user = "sandbox"        # optional: the group of every run (and the uid with uids = "off")
//! uids = "2000000000-2000065535"  # optional: a uid of its own per run (the default), or "off"
//! policy = "auto"         # auto | require:landlock,seccomp,... | unsafe
//! preload = ["numpy", "random2", "six"]  # optional: what each warm interpreter imports first
//! allow_exec = false      # true: the code may start other programs
//!
//! [limits]
//! cpu = 1
//! realtime = 1
//!
//! [limit_overrides.big-course]
//! realtime = 10
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Confinement, JailConfig, Lang};
use crate::limits::{LimitError, LimitName, override_limit, set_limit};
use crate::uids::Uids;

mod service;
pub use service::ServiceSettings;

/// A parsed settings file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Jails by name.
    pub jails: BTreeMap<String, JailConfig>,
    /// Global limits.
    pub limits: Vec<(LimitName, u64)>,
    /// Limits per context.
    pub overrides: BTreeMap<String, Vec<(LimitName, u64)>>,
    /// The `[service]` section (`codejail serve`).
    pub service: ServiceSettings,
}

/// A settings file that could not be read or understood. The message names
/// the file, the line and the key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("{}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`Settings::MAX_BYTES`] (an endless file,
    /// such as `/dev/zero`, is not read to its end).
    #[error("{}: larger than {} KiB; give the settings file (a few KiB of TOML)", file.display(), max >> 10)]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The most bytes a settings file may hold.
        max: u64,
    },
    /// The file is not valid, at a line, for a key.
    #[error("{}:{line}: {key}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// The key (dotted), or `-` for a syntax error.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "expected a language name (python3, python2, other), or { name = \"...\", args = [\"...\"] }"
)]
enum RawLang {
    Name(String),
    Custom { name: String, args: Vec<String> },
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "expected a user name, or the uid of an account (an integer from 0 to 4294967295)"
)]
enum RawUser {
    Name(String),
    Uid(u32),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJail {
    bin: Spanned<String>,
    lang: Option<Spanned<RawLang>>,
    user: Option<Spanned<RawUser>>,
    #[serde(default)]
    allow_root_user: bool,
    #[serde(default)]
    allow_exec: bool,
    policy: Option<Spanned<String>>,
    apparmor_profile: Option<String>,
    jail_parent: Option<Spanned<String>>,
    uids: Option<Spanned<String>>,
    uid_lock_dir: Option<Spanned<String>>,
    #[serde(default)]
    preload: Vec<Spanned<String>>,
    #[serde(default)]
    read_paths: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    jails: BTreeMap<String, RawJail>,
    #[serde(default)]
    limits: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    limit_overrides: BTreeMap<String, BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    service: Option<service::RawService>,
}

/// Deserializes the document, or says where (byte offset), at which key
/// (dotted; `-` for a syntax error) and what is wrong.
fn parse_raw(text: &str) -> Result<Raw, (usize, String, String)> {
    // The line holding `offset`, from its start.
    let line_at = |offset: usize| {
        let offset = offset.min(text.len());
        let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        (start, text[start..].lines().next().unwrap_or(""))
    };
    // The key written on the line at `offset` (before its `=`).
    let key_at = |offset: usize| {
        let (_, line) = line_at(offset);
        line.split_once('=')
            .map(|(key, _)| key.trim().trim_matches('"').to_owned())
            .filter(|key| !key.is_empty())
    };
    // The table `offset` is in: the last `[header]` above it (a header in a
    // multi-line string above it misleads this).
    let table_at = |offset: usize| {
        text[..offset.min(text.len())]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .and_then(|h| {
                let h = h.trim_start_matches('[');
                h.find(']').map(|end| h[..end].trim().to_owned())
            })
    };
    let dotted = |table: Option<String>, key: String| match table {
        Some(t) if !key.starts_with(&format!("{t}.")) => format!("{t}.{key}"),
        _ => key,
    };
    let syntax = |e: toml::de::Error| {
        let span = e.span();
        let offset = span.as_ref().map_or(0, |s| s.start);
        let message = e.message().trim().to_owned();
        match span.and_then(|s| text.get(s)) {
            // The span is the key given again.
            Some(token) if message == "duplicate key" => {
                let key = token.trim().trim_matches('"').to_owned();
                let (start, line) = line_at(offset);
                // In an inline table: the line's key names the table.
                let inline = line
                    .find('=')
                    .is_some_and(|eq| start + eq < offset)
                    .then(|| key_at(offset))
                    .flatten();
                let table = match (table_at(offset), inline) {
                    (Some(t), Some(i)) => Some(format!("{t}.{i}")),
                    (t, i) => i.or(t),
                };
                (
                    offset,
                    dotted(table, key.clone()),
                    format!("`{key}` is given twice in its table; give it once"),
                )
            }
            _ => (offset, "-".to_owned(), message),
        }
    };
    let de = toml::Deserializer::parse(text).map_err(syntax)?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        // Spanned<T> shows up in the path as a private field: drop it.
        let key = match e.path().to_string() {
            root if root == "." => "-".to_owned(),
            path => path
                .split('.')
                .filter(|part| !part.starts_with("$__serde_spanned"))
                .collect::<Vec<_>>()
                .join("."),
        };
        let inner = e.into_inner();
        let message = inner.message().trim().to_owned();
        let offset = inner.span().map_or(0, |s| s.start);
        // A map's key the path cannot name (`limits.?`): the line's.
        let key = match (key.strip_suffix(".?"), key_at(offset)) {
            (Some(table), Some(name)) => dotted(Some(table.to_owned()), name),
            _ => key,
        };
        (offset, key, message)
    })
}

impl Settings {
    /// Reads and checks a settings file.
    ///
    /// # Errors
    /// [`SettingsError`] naming the file, line and key.
    pub fn load(file: &Path) -> Result<Settings, SettingsError> {
        use std::io::Read;
        let read = |source| SettingsError::Read {
            file: file.to_owned(),
            source,
        };
        // At most one byte past the bound: an endless file is not read to
        // its end.
        let mut text = String::new();
        std::fs::File::open(file)
            .map_err(read)?
            .take(Settings::MAX_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > Settings::MAX_BYTES {
            return Err(SettingsError::TooLarge {
                file: file.to_owned(),
                max: Settings::MAX_BYTES,
            });
        }
        Settings::parse(&text, file)
    }

    /// The most bytes a settings file may hold ([`Settings::load`]): 1 MiB,
    /// where a settings file is a few KiB.
    pub const MAX_BYTES: u64 = 1 << 20;

    /// Parses settings text; `file` is only used in messages.
    ///
    /// # Errors
    /// [`SettingsError::Invalid`].
    pub fn parse(text: &str, file: &Path) -> Result<Settings, SettingsError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let invalid = |offset: usize, key: String, message: String| SettingsError::Invalid {
            file: file.to_owned(),
            line: line_of(offset),
            key,
            message,
        };
        let raw: Raw =
            parse_raw(text).map_err(|(offset, key, message)| invalid(offset, key, message))?;
        let limit_list = |table: &BTreeMap<Spanned<String>, Spanned<toml::Value>>, prefix: &str| {
            let mut seen: BTreeMap<LimitName, &str> = BTreeMap::new();
            table
                .iter()
                .map(|(k, v)| {
                    let key = format!("{prefix}.{}", k.get_ref());
                    let name: LimitName = k.get_ref().parse().map_err(|e: crate::LimitError| {
                        invalid(k.span().start, key.clone(), e.to_string())
                    })?;
                    // Names are case-insensitive: `CPU` and `cpu` are one.
                    if let Some(other) = seen.insert(name, k.get_ref()) {
                        return Err(invalid(
                            k.span().start,
                            key.clone(),
                            format!(
                                "limit {name} is given twice (`{other}` and `{}`: names are case-insensitive); give it once",
                                k.get_ref()
                            ),
                        ));
                    }
                    let value = match v.get_ref() {
                        toml::Value::Integer(n) => u64::try_from(*n)
                            .map_err(|_| LimitError::BadValue {
                                name,
                                value: n.to_string(),
                            })
                            .and_then(|n| name.check(n)),
                        toml::Value::String(text) => name.parse_value(text),
                        other => Err(LimitError::BadValue {
                            name,
                            value: other.to_string(),
                        }),
                    };
                    let value = value.map_err(|e| invalid(v.span().start, key, e.to_string()))?;
                    Ok((name, value))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let mut settings = Settings {
            limits: limit_list(&raw.limits, "limits")?,
            ..Settings::default()
        };
        for (context, table) in &raw.limit_overrides {
            settings.overrides.insert(
                context.clone(),
                limit_list(table, &format!("limit_overrides.{context}"))?,
            );
        }
        if let Some(service) = raw.service {
            settings.service = service
                .resolve()
                .map_err(|(offset, key, message)| invalid(offset, key, message))?;
        }
        for (name, jail) in raw.jails {
            let mut config = JailConfig::new(jail.bin.get_ref());
            if let Some(lang) = jail.lang {
                let span = lang.span().start;
                config.lang = match lang.into_inner() {
                    RawLang::Name(lang) => lang
                        .parse()
                        .map_err(|e| invalid(span, format!("jails.{name}.lang"), e))?,
                    RawLang::Custom { name: lang, args } => Lang::custom(lang, args),
                };
            }
            config.user = jail.user.map(|u| match u.into_inner() {
                RawUser::Name(name) => name,
                RawUser::Uid(uid) => uid.to_string(),
            });
            config.allow_root_user = jail.allow_root_user;
            config.allow_exec = jail.allow_exec;
            if let Some(policy) = jail.policy {
                config.confinement = policy
                    .get_ref()
                    .parse::<Confinement>()
                    .map_err(|e| invalid(policy.span().start, format!("jails.{name}.policy"), e))?;
            }
            if let Some(uids) = jail.uids {
                config.uids = uids.get_ref().parse::<Uids>().map_err(|e| {
                    invalid(
                        uids.span().start,
                        format!("jails.{name}.uids"),
                        e.to_string(),
                    )
                })?;
            }
            if let Some(dir) = jail.uid_lock_dir {
                let path = PathBuf::from(dir.get_ref());
                if !path.is_absolute() {
                    return Err(invalid(
                        dir.span().start,
                        format!("jails.{name}.uid_lock_dir"),
                        format!(
                            "`{}` is not an absolute path; give the full path",
                            dir.get_ref()
                        ),
                    ));
                }
                config.uid_lock_dir = Some(path);
            }
            let preload_at = jail.preload.first().map_or(0, |m| m.span().start);
            for module in jail.preload {
                if !crate::config::is_module_name(module.get_ref()) {
                    return Err(invalid(
                        module.span().start,
                        format!("jails.{name}.preload"),
                        crate::ConfigError::BadPreload {
                            module: module.get_ref().clone(),
                        }
                        .to_string(),
                    ));
                }
                config.preload.push(module.into_inner());
            }
            if !config.preload.is_empty() && !config.lang.has_safe_exec() {
                return Err(invalid(
                    preload_at,
                    format!("jails.{name}.preload"),
                    crate::ConfigError::PreloadNeedsPython {
                        jail: name.clone(),
                        lang: config.lang.to_string(),
                    }
                    .to_string(),
                ));
            }
            for (i, path) in jail.read_paths.iter().enumerate() {
                let p = PathBuf::from(path.get_ref());
                if !p.is_absolute() {
                    return Err(invalid(
                        path.span().start,
                        format!("jails.{name}.read_paths[{i}]"),
                        format!(
                            "`{}` is not an absolute path; give the full path",
                            path.get_ref()
                        ),
                    ));
                }
                config.read_paths.push(p);
            }
            config.apparmor_profile = jail.apparmor_profile;
            if let Some(dir) = jail.jail_parent {
                // A relative parent would put jails in whatever directory
                // the caller runs in, where `gc` does not look.
                let path = PathBuf::from(dir.get_ref());
                if !path.is_absolute() {
                    return Err(invalid(
                        dir.span().start,
                        format!("jails.{name}.jail_parent"),
                        format!(
                            "`{}` is not an absolute path; give the full path, or leave it out for the system's temporary directory",
                            dir.get_ref()
                        ),
                    ));
                }
                config.jail_parent = Some(path);
            }
            settings.jails.insert(name, config);
        }
        // No jail configured: the built-in one, as without a file.
        if settings.jails.is_empty() {
            settings.jails = Settings::defaults().jails;
        }
        Ok(settings)
    }

    /// Sets every global limit and context override (each was checked
    /// against its range when the file was read).
    pub fn apply_limits(&self) {
        for &(name, value) in &self.limits {
            set_limit(name, value).expect("checked when parsed");
        }
        for (context, list) in &self.overrides {
            for &(name, value) in list {
                override_limit(name, value, context).expect("checked when parsed");
            }
        }
    }

    /// Sets the limits and configures every jail.
    ///
    /// # Errors
    /// The first jail that cannot be configured.
    pub fn apply(&self) -> Result<(), crate::ConfigError> {
        self.apply_limits();
        for (name, config) in &self.jails {
            crate::configure_with(name, config.clone())?;
        }
        Ok(())
    }

    /// Where the jails of these settings are made: each jail's
    /// `jail_parent`, or the system temp dir (what [`crate::gc`] looks
    /// through).
    pub fn jail_parents(&self) -> Vec<PathBuf> {
        crate::leftovers::parents_of(self.jails.values().map(|j| j.jail_parent.as_deref()))
    }

    /// Where the uid leases of these settings' jails are, with their
    /// ranges: each jail's `uid_lock_dir`, or
    /// [`crate::DEFAULT_UID_LOCK_DIR`], and its `uids` range (what
    /// [`crate::gc_leases`] looks through); jails with `uids = "off"` take
    /// none.
    pub fn uid_leases(&self) -> Vec<(PathBuf, Vec<crate::UidRange>)> {
        let mut dirs: BTreeMap<PathBuf, Vec<crate::UidRange>> = BTreeMap::new();
        for jail in self.jails.values() {
            if let Uids::Range(range) = jail.uids {
                let dir = jail
                    .uid_lock_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_UID_LOCK_DIR));
                dirs.entry(dir).or_default().push(range);
            }
        }
        dirs.into_iter().collect()
    }

    /// The built-in defaults: jail `python` is the first of
    /// `/usr/bin/python3` and `python3` on `PATH`, policy `auto`.
    pub fn defaults() -> Settings {
        let bin = if Path::new("/usr/bin/python3").is_file() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let mut settings = Settings::default();
        settings.jails.insert("python".into(), JailConfig::new(bin));
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, SettingsError> {
        Settings::parse(text, Path::new("codejail.toml"))
    }

    #[test]
    fn the_documented_example_parses() {
        let s = parse(
            "[jails.python]\nbin = \"/usr/bin/python3\"\nuser = \"sandbox\"\npolicy = \"require:landlock,seccomp\"\n\n\
             [limits]\ncpu = 2\nREALTIME = 3\n\n[limit_overrides.big-course]\nrealtime = 10\n",
        )
        .unwrap();
        let jail = &s.jails["python"];
        assert_eq!(jail.user.as_deref(), Some("sandbox"));
        assert_eq!(jail.uids, Uids::default());
        // No jail in the file: the built-in one, as without a file.
        for text in ["", "[limits]\ncpu = 2\n", "[jails]\n"] {
            let s = parse(text).unwrap();
            assert_eq!(
                s.jails.keys().collect::<Vec<_>>(),
                Settings::defaults().jails.keys().collect::<Vec<_>>(),
                "{text:?}"
            );
            assert_eq!(
                s.jails["python"].bin,
                Settings::defaults().jails["python"].bin
            );
        }
        let two = parse(
            "[jails.a]\nbin = \"/x\"\nuids = \"off\"\n[jails.b]\nbin = \"/x\"\nuids = \"3000000-3000999\"\nuid_lock_dir = \"/run/l\"\n",
        )
        .unwrap();
        assert_eq!(two.jails["a"].uids, Uids::Off);
        assert_eq!(
            two.jails["b"].uids,
            Uids::Range(crate::UidRange::new(3_000_000, 3_000_999).unwrap())
        );
        assert_eq!(
            two.jails["b"].uid_lock_dir.as_deref(),
            Some(Path::new("/run/l"))
        );
        assert!(
            !jail.allow_exec,
            "no new programs unless the settings say so"
        );
        assert!(
            matches!(jail.confinement, Confinement::Require(set) if set.names() == ["landlock", "seccomp"])
        );
        assert_eq!(s.limits, [(LimitName::Realtime, 3), (LimitName::Cpu, 2)]);
        assert_eq!(jail.preload, Vec::<String>::new());
        let preloaded =
            parse("[jails.p]\nbin = \"/x\"\npreload = [\"numpy\", \"numpy.linalg\", \"six\"]\n")
                .unwrap();
        assert_eq!(
            preloaded.jails["p"].preload,
            ["numpy", "numpy.linalg", "six"]
        );
        assert_eq!(s.overrides["big-course"], [(LimitName::Realtime, 10)]);
    }

    #[test]
    fn errors_name_the_file_the_line_and_the_key() {
        let err = parse("[limits]\ncpu = 1\nwalltime = 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("codejail.toml:3: limits.walltime: unknown limit `walltime`"),
            "{err}"
        );
        let err = parse("[limits]\ncpu = -1\n").unwrap_err().to_string();
        assert!(
            err.starts_with("codejail.toml:2: limits.cpu: limit cpu takes whole seconds"),
            "{err}"
        );
        let err = parse("[jails.python]\nbin = \"/x\"\npolicy = \"paranoid\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("codejail.toml:3: jails.python.policy: unknown policy"),
            "{err}"
        );
        let err = parse("[jails.python]\nbin = \"/x\"\nusr = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("codejail.toml:3: jails.python.usr: unknown field `usr`"),
            "{err}"
        );
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            err("[jails.python]\nbin = \"/x\"\nuser = -5\n"),
            "codejail.toml:3: jails.python.user: expected a user name, or the uid of an account (an integer from 0 to 4294967295)"
        );
        assert!(
            err("[jails.python]\nbin = \"/x\"\nlang = { name = \"x\" }\n").starts_with(
                "codejail.toml:3: jails.python.lang: expected a language name (python3, python2, other), or {"
            ),
            "{}",
            err("[jails.python]\nbin = \"/x\"\nlang = { name = \"x\" }\n")
        );
        assert!(
            err("[limits]\ncpu = 18446744073709551616\n")
                .starts_with("codejail.toml:2: limits.cpu: "),
            "{}",
            err("[limits]\ncpu = 18446744073709551616\n")
        );
        assert_eq!(
            err("[limits]\ncpu = 1\ncpu = 2\n"),
            "codejail.toml:3: limits.cpu: `cpu` is given twice in its table; give it once"
        );
        for (text, key) in [
            ("[limits] # the limits\ncpu = 1\ncpu = 2\n", "limits.cpu"),
            ("limits = { cpu = 1, cpu = 2 }\n", "limits.cpu"),
            ("\"a=b\" = \"1\"\n\"a=b\" = \"2\"\n", "a=b"),
        ] {
            assert!(
                err(text).contains(&format!(
                    ": {key}: `{}` is given twice",
                    key.rsplit('.').next().unwrap()
                )),
                "{text:?}: {}",
                err(text)
            );
        }
        assert!(
            err("limits.cpu = 18446744073709551616\n").starts_with("codejail.toml:1: limits.cpu: "),
            "{}",
            err("limits.cpu = 18446744073709551616\n")
        );
        assert_eq!(
            err("[limits]\nCPU = 2\ncpu = 3\n"),
            "codejail.toml:3: limits.cpu: limit cpu is given twice (`CPU` and `cpu`: names are case-insensitive); give it once"
        );
        for parent in ["", "relative"] {
            let err = parse(&format!(
                "[jails.python]\nbin = \"/x\"\njail_parent = \"{parent}\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.starts_with(&format!(
                    "codejail.toml:3: jails.python.jail_parent: `{parent}` is not an absolute path"
                )),
                "{err}"
            );
        }
        let err = parse("[limits\ncpu = 1\n").unwrap_err().to_string();
        assert!(err.starts_with("codejail.toml:1: -:"), "{err}");
        let err = parse("[jails.python]\nbin = 3\n").unwrap_err().to_string();
        assert!(
            err.starts_with("codejail.toml:2: jails.python.bin: invalid type: integer `3`"),
            "{err}"
        );
        let err = parse("[limits]\ncpu = 1\n[nonsense]\nx = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("codejail.toml:3: nonsense: unknown field `nonsense`"),
            "{err}"
        );
        let s =
            parse("[jails.sh]\nbin = \"/bin/sh\"\nlang = \"other\"\nallow_exec = true\n").unwrap();
        assert!(s.jails["sh"].allow_exec);
        let err = parse("[jails.sh]\nbin = \"/bin/sh\"\nallow_exec = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("codejail.toml:3: jails.sh.allow_exec: invalid type: string"),
            "{err}"
        );
        let err = parse("[jails.python]\nbin = \"/x\"\nuids = \"5-1\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("codejail.toml:3: jails.python.uids: uid range 5-1 is empty"),
            "{err}"
        );
        let err = parse("[jails.python]\nbin = \"/x\"\nuid_lock_dir = \"run\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("codejail.toml:3: jails.python.uid_lock_dir: `run` is not an absolute"),
            "{err}"
        );
        let err = parse(
            "[jails.python]\nbin = \"/x\"\npreload = [\n  \"numpy\",\n  \"os; import x\",\n]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "codejail.toml:5: jails.python.preload: preload entry `os; import x` is not a module name"
            ),
            "{err}"
        );
        let err = parse("[jails.python]\nbin = \"/x\"\npreload = \"numpy\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("codejail.toml:3: jails.python.preload: invalid type: string"),
            "{err}"
        );
        let err = parse("[jails.sh]\nbin = \"/bin/sh\"\nlang = \"other\"\npreload = [\"numpy\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "codejail.toml:4: jails.sh.preload: jail `sh` runs other, which has no warm path"
            ),
            "{err}"
        );
        let err = parse("[jails.python]\nbin = \"/x\"\nread_paths = [\"/srv/data\", \"data\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "codejail.toml:3: jails.python.read_paths[1]: `data` is not an absolute"
            ),
            "{err}"
        );
        let s = parse("[jails.python]\nbin = \"/x\"\nread_paths = [\"/srv/data\"]\n").unwrap();
        assert_eq!(s.jails["python"].read_paths, [PathBuf::from("/srv/data")]);
        // A uid is a number, as the message about unknown users suggests.
        let s = parse("[jails.python]\nbin = \"/x\"\nuser = 999\n").unwrap();
        assert_eq!(s.jails["python"].user.as_deref(), Some("999"));
    }
}

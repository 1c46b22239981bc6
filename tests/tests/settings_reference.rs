//! The README's settings reference against the code: every key the
//! settings file accepts is documented there and nothing else is, each
//! limit's documented default is the code's, and the reference's example
//! (which shows every key) parses. The README and the shipped example
//! settings are compiled in, so the test reads nothing at run time (it
//! also runs as `nobody`).

use std::collections::BTreeSet;
use std::path::Path;

use codejail::{LimitName, Settings};

const README: &str = include_str!("../../README.md");
const DEPLOY_SETTINGS: &str = include_str!("../../deploy/codejail.toml");

/// The `## Settings reference` section.
fn reference() -> &'static str {
    let start = README
        .find("\n## Settings reference\n")
        .expect("README.md has a `## Settings reference` section");
    let rest = &README[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The rows of the table under `### {heading}` in the reference: the
/// first cell's key (without backticks) and the other cells.
fn table(heading: &str) -> Vec<(String, Vec<String>)> {
    let text = reference();
    let marker = format!("\n### {heading}\n");
    let start = text
        .find(&marker)
        .unwrap_or_else(|| panic!("the settings reference has no `### {heading}`"));
    let body = &text[start + marker.len()..];
    let body = &body[..body.find("\n### ").unwrap_or(body.len())];
    body.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect();
            (cells[0].trim_matches('`').to_owned(), cells[1..].to_vec())
        })
        .collect()
}

fn keys(rows: &[(String, Vec<String>)]) -> BTreeSet<String> {
    rows.iter().map(|(k, _)| k.clone()).collect()
}

/// The keys serde accepts where `text` puts an unknown key, from its
/// message ("unknown field `x`, expected one of `a`, `b`").
fn accepted(text: &str) -> BTreeSet<String> {
    let err = Settings::parse(text, Path::new("t.toml"))
        .expect_err("an unknown key is an error")
        .to_string();
    let list = err
        .split_once("expected one of ")
        .or_else(|| err.split_once("expected "))
        .unwrap_or_else(|| panic!("no list of keys in: {err}"))
        .1;
    list.split(',')
        .map(|k| {
            k.trim()
                .trim_start_matches("or ")
                .trim_matches('`')
                .to_owned()
        })
        .filter(|k| !k.is_empty())
        .collect()
}

#[test]
fn support_every_section_is_documented() {
    assert_eq!(
        keys(&table("Sections")),
        accepted("zz_not_a_key = 1\n"),
        "README.md's settings reference (### Sections) and the settings file's sections differ"
    );
}

#[test]
fn support_every_jail_key_is_documented() {
    assert_eq!(
        keys(&table("`[jails.NAME]`")),
        accepted("[jails.x]\nbin = \"/x\"\nzz_not_a_key = 1\n"),
        "README.md's settings reference (### `[jails.NAME]`) and the keys of a jail differ"
    );
}

#[test]
fn support_every_service_key_is_documented() {
    assert_eq!(
        keys(&table("`[service]`")),
        accepted("[service]\nzz_not_a_key = 1\n"),
        "README.md's settings reference (### `[service]`) and the keys of [service] differ"
    );
}

#[test]
fn support_every_limit_and_its_default_is_documented() {
    let rows = table("`[limits]` and `[limit_overrides.CONTEXT]`");
    let names: BTreeSet<String> = LimitName::ALL
        .iter()
        .map(|n| n.as_str().to_owned())
        .collect();
    assert_eq!(
        keys(&rows),
        names,
        "README.md's limits and LimitName::ALL differ"
    );
    for (key, cells) in &rows {
        let name: LimitName = key.parse().unwrap();
        let default = cells[1].trim_matches('`');
        assert_eq!(
            name.parse_value(default).ok(),
            Some(name.default_value()),
            "README.md says the default of `{key}` is `{default}`; the code's is {}",
            name.default_value()
        );
    }
}

/// The reference's example shows every key, and parses.
#[test]
fn support_the_reference_example_has_every_key_and_parses() {
    let text = reference();
    let start = text
        .find("```toml\n")
        .expect("the reference has a toml example")
        + 8;
    let example = &text[start..start + text[start..].find("```").unwrap()];
    let settings = Settings::parse(example, Path::new("README.md")).unwrap();
    let documented = [
        "`[jails.NAME]`",
        "`[limits]` and `[limit_overrides.CONTEXT]`",
        "`[service]`",
    ]
    .iter()
    .flat_map(|h| keys(&table(h)));
    for key in documented {
        assert!(
            example.lines().any(|l| l.starts_with(&format!("{key} = "))),
            "the settings reference's example does not show `{key}`"
        );
    }
    assert_eq!(settings.jails.len(), 1);
    assert_eq!(settings.limits.len(), LimitName::ALL.len());
}

/// The settings the .deb installs as /etc/codejail/codejail.toml parse.
#[test]
fn support_the_packaged_settings_parse() {
    let settings = Settings::parse(DEPLOY_SETTINGS, Path::new("deploy/codejail.toml")).unwrap();
    assert!(settings.jails.contains_key(&settings.service.jail));
}

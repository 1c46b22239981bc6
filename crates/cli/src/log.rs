//! The command's logs: one line per event on stderr, as text
//! (`codejail: warn: [jail=python slug=course-42] Killing process 123: ...`)
//! or as JSON lines, at a level chosen with `--log-level` (default `warn`)
//! and refined with `RUST_LOG`'s directives.

use std::fmt;

use clap::ValueEnum;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// `codejail: LEVEL: [span fields] message fields`.
    #[default]
    Text,
    /// One JSON object per line, with the fields of every open span.
    Json,
}

/// The least severe level shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Level {
    /// Errors only.
    Error,
    /// Warnings: kills, unconfined runs (the default).
    #[default]
    Warn,
    /// One line per run, with its slug.
    Info,
    /// Each step.
    Debug,
    /// Everything.
    Trace,
}

impl Level {
    fn directive(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            Level::Error => LevelFilter::ERROR,
            Level::Warn => LevelFilter::WARN,
            Level::Info => LevelFilter::INFO,
            Level::Debug => LevelFilter::DEBUG,
            Level::Trace => LevelFilter::TRACE,
        }
    }
}

/// Installs the subscriber for the whole process.
pub(crate) fn init(level: Level, format: Format) {
    let filter = EnvFilter::builder()
        .with_default_directive(level.directive().into())
        .from_env_lossy();
    // A stderr that cannot be written loses the line: the subscriber
    // would report its failure with `eprintln!`, which panics there.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_env_filter(filter);
    match format {
        Format::Text => builder.event_format(Text).init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_target(false)
            .init(),
    }
}

/// The text line: `codejail: warn: [jail=python slug=x] message key=value`.
struct Text;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let mut spans = Vec::new();
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                if !fields.is_empty() {
                    spans.push(fields.to_string());
                }
            }
        }
        let mut line = String::new();
        if !spans.is_empty() {
            line = format!("[{}] ", spans.join(" "));
        }
        ctx.field_format()
            .format_fields(Writer::new(&mut line), event)?;
        // One event, one line: a value's line breaks (a caller's slug, a
        // message) must not start a line a reader takes for another event.
        writeln!(writer, "codejail: {level}: {}", one_line(&line))
    }
}

/// `text` with its control characters escaped (`\n`, `\r`, `\t`,
/// `\u{..}`).
fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_logged_value_cannot_start_a_line() {
        assert_eq!(one_line("slug=a\nb] ran"), "slug=a\\nb] ran");
        assert_eq!(one_line("a\r\tb\u{1b}[31m"), "a\\r\\tb\\u{1b}[31m");
        assert_eq!(one_line("plain café"), "plain café");
    }
}

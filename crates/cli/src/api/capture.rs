//! The run's log lines, its supervisor's pid and its jail directory,
//! kept for the response.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

/// What the run logged, its supervisor's pid and its jail directory.
#[derive(Default)]
pub(super) struct Captured {
    pub(super) logs: Vec<Value>,
    pub(super) pid: Option<i64>,
    pub(super) jail_dir: Option<PathBuf>,
}

/// A tracing layer that keeps the run's log lines for the response.
pub(super) struct Capture {
    pub(super) state: Arc<Mutex<Captured>>,
    pub(super) parent: PathBuf,
}

/// A span's or an event's fields as JSON.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), json!(format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
        // The process layer's span opens once the jail directory is made
        // and staged: the request's parent holds it alone.
        let meta = attrs.metadata();
        if meta.name() == "run" && meta.target().starts_with("codejail_proc") {
            let found = std::fs::read_dir(&self.parent)
                .ok()
                .and_then(|mut dir| dir.next())
                .and_then(Result::ok)
                .map(|entry| entry.path());
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.jail_dir.is_none() {
                state.jail_dir = found;
            }
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut recorded = Fields::default();
        values.record(&mut recorded);
        if let Some(pid) = recorded.0.get("pid").and_then(Value::as_i64) {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).pid = Some(pid);
        }
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<Fields>() {
                Some(fields) => fields.0.extend(recorded.0),
                None => ext.insert(recorded),
            }
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut all = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<Fields>() {
                    all.extend(fields.0.clone());
                }
            }
        }
        let mut own = Fields::default();
        event.record(&mut own);
        let message = own
            .0
            .remove("message")
            .and_then(|m| m.as_str().map(str::to_owned))
            .unwrap_or_default();
        all.extend(own.0);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .logs
            .push(json!({"level": level, "message": message, "fields": all}));
    }
}
